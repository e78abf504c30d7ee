// The browser snippet from the notes this project grew from, run by Node.js (18+ has
// fetch). Adapted only in its URL and arguments, which come from the command line:
//   node seed_fetch.js URL ARGS_JSON
// success() and failure() are the snippet's callbacks: they print one JSON line.
const url = process.argv[2];
const success = async (result) => console.log(JSON.stringify({success: await result}));
const failure = (what) => console.log(JSON.stringify(
  {failure: typeof what === 'number' ? what : String(what)}));

let args = JSON.parse(process.argv[3]);
let request = {
  method: 'POST',
  body: JSON.stringify(args),
  headers: {'Content-Type': 'application/json'}
};

fetch(url, request)
  .then((response) => {
    if (response.ok) success(response.json());
    else failure(response.status); // server error
  })
  .catch((error) => {
    failure(error); // network error
  });
