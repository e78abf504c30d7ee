"""The explorer page of the HTTP face: ``GET /explorer`` (``docs/http.md``).

One self-contained HTML page, made here from the :class:`~rpcx.schema.ServiceSpec`\\ s a
server dispatches to: no build step, no external assets (its Content-Security-Policy lets
it load nothing and talk only to its own origin). It lists the services and methods with
their IDL docs, offers a JSON editor per method prefilled from the schema, sends the call
with ``fetch`` and shows the HTTP status, ``rpcx-status``, the body and the timing.

The page reads every answer through ``response.body.getReader()``, chunk by chunk, and
shows what has arrived so far: a server stream (newline-delimited JSON,
``rpcx.gateway.streaming``) shows line by line as it comes, with a count of its messages
and a Stop button that aborts the fetch (which cancels the call on the server). A
method's ``"streaming"`` says ``"server"``, ``"client"`` or ``"bidi"``; the last two
cannot be called over HTTP and the page says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any, Final

from rpcx.codec.json_codec import JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import (
    MISSING,
    EnumSpec,
    FieldSpec,
    Kind,
    MethodSpec,
    ServiceSpec,
    StructSpec,
    TypeRef,
    UnionSpec,
    spec_of,
)

__all__ = ["EXPLORER_PATH", "example_arguments", "explorer_data", "explorer_page"]

EXPLORER_PATH: Final = "/explorer"

_MAX_DEPTH: Final = 6
"""How deep the example of a recursive type goes before it stops at null or empty."""


def _example(ref: TypeRef, depth: int = 0) -> Any:
    """A value of type ``ref`` in the JSON mapping, to start editing from."""
    kind = ref.kind
    if kind is Kind.BOOL:
        return False
    if kind is Kind.INT:
        return 0
    if kind is Kind.FLOAT:
        return 0.0
    if kind is Kind.DECIMAL:
        return "0"
    if kind in (Kind.STRING, Kind.BYTES):
        return ""
    if kind is Kind.TIMESTAMP:
        return "1970-01-01T00:00:00Z"
    if kind is Kind.LIST:
        return []
    if kind is Kind.MAP:
        return {}
    if kind is Kind.OPTIONAL:
        return None
    if ref.cls is None or depth >= _MAX_DEPTH:
        return None
    spec = spec_of(ref.cls)
    if isinstance(spec, EnumSpec):
        members = list(spec.cls)
        return members[0].name if members else 0
    if isinstance(spec, StructSpec):
        return _example_object(spec.fields, depth + 1)
    if isinstance(spec, UnionSpec) and spec.variants:
        first = spec.variants[0]
        return {first.name: _example(first.type, depth + 1)}
    return None


def _default_json(field: FieldSpec) -> Any:
    """A field's default in the JSON mapping (what the server takes when it is absent)."""
    try:
        return json.loads(JsonCodec().encode(field.type, field.default))
    except (CodecError, ValueError):
        return None


def _example_object(fields: Iterable[FieldSpec], depth: int = 0) -> dict[str, Any]:
    return {field.name: _example(field.type, depth) if field.default is MISSING
            else _default_json(field) for field in fields}


def example_arguments(method: MethodSpec) -> dict[str, Any]:
    """The arguments the editor starts with: every parameter, a required one with a value
    of its type (``""``, ``0``, the first enum member, ...), the others with their
    default."""
    return _example_object(method.params.fields)


def _type_text(ref: TypeRef | None) -> str:
    return "nothing" if ref is None else ref.describe()


def _method_data(method: MethodSpec) -> dict[str, Any]:
    params = []
    for field in method.params.fields:
        param: dict[str, Any] = {"name": field.name, "type": field.type.describe(),
                                 "doc": field.doc, "required": field.default is MISSING}
        if field.default is not MISSING:
            param["default"] = _default_json(field)
        params.append(param)
    return {
        "name": method.name, "path": method.path, "doc": method.doc,
        "params": params,
        "result": ("stream " if method.server_stream else "") + _type_text(method.result),
        "throws": [str(spec_of(cls).name) for cls in method.throws],
        "idempotent": method.idempotent, "oneway": method.oneway,
        "readonly": bool(getattr(method, "readonly", False)),
        "deadline": method.deadline, "deprecated": method.deprecated,
        "streaming": method.streaming,
        "example": example_arguments(method),
    }


def explorer_data(services: Iterable[ServiceSpec], *, title: str,
                  openapi: bool) -> dict[str, Any]:
    """What the page shows, as JSON-able data (also what its script reads)."""
    return {
        "title": title, "openapi": "/openapi.json" if openapi else None,
        "services": [{"name": service.name, "doc": service.doc,
                      "methods": [_method_data(m) for m in service.methods]}
                     for service in services],
    }


def _script_json(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or
    ``&`` can end the element or start a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html_text(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def explorer_page(services: Iterable[ServiceSpec], *, title: str = "rpcx services",
                  openapi: bool = True) -> tuple[bytes, str]:
    """The page (UTF-8 HTML) and its Content-Security-Policy header value."""
    data = _script_json(explorer_data(services, title=title, openapi=openapi))
    html = (_PAGE.replace("@TITLE@", _html_text(title)).replace("@STYLE@", _STYLE)
            .replace("@SCRIPT@", _SCRIPT).replace("@DATA@", data))
    policy = ("default-src 'none'; "
              f"script-src {_sha256(_SCRIPT)}; style-src {_sha256(_STYLE)}; "
              "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return html.encode("utf-8"), policy


_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@ · rpcx explorer</title>
<style>@STYLE@</style>
</head>
<body>
<header><h1>@TITLE@</h1><span class="sub">rpcx explorer</span>
<a id="openapi" hidden>openapi.json</a></header>
<main>
<nav id="services" aria-label="services and methods"></nav>
<section id="method" aria-live="polite">
<p class="hint">Pick a method on the left.</p>
</section>
</main>
<script type="application/json" id="rpcx-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

_STYLE: Final = """
:root { color-scheme: light dark; --line: #8884; --accent: #2a6df4; --bad: #c62828;
        --good: #2e7d32; font-family: system-ui, sans-serif; font-size: 15px; }
body { margin: 0; }
header { display: flex; gap: 1em; align-items: baseline; padding: .6em 1em;
         border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.2em; margin: 0; }
header .sub { opacity: .7; }
header a { margin-left: auto; }
main { display: grid; grid-template-columns: minmax(14em, 22em) 1fr; min-height: 90vh; }
nav { border-right: 1px solid var(--line); padding: .5em; overflow: auto; }
nav h2 { font-size: .95em; margin: .8em 0 .2em; }
nav .doc { font-size: .85em; opacity: .75; margin: 0 0 .3em; }
nav button { display: block; width: 100%; text-align: left; border: 0; padding: .3em .5em;
             background: none; color: inherit; font: inherit; cursor: pointer;
             border-radius: 4px; }
nav button:hover { background: #8882; }
nav button[aria-current="true"] { background: var(--accent); color: white; }
section { padding: 1em 1.5em; overflow: auto; }
h2.path { font-family: ui-monospace, monospace; font-size: 1.1em; margin-top: 0; }
.doc { white-space: pre-wrap; }
.tags span { display: inline-block; font-size: .8em; border: 1px solid var(--line);
             border-radius: 3px; padding: 0 .4em; margin-right: .3em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border-bottom: 1px solid var(--line); padding: .2em .8em .2em 0; text-align: left;
         vertical-align: top; }
code, textarea, pre { font-family: ui-monospace, monospace; font-size: .92em; }
textarea { width: 100%; min-height: 6em; box-sizing: border-box; padding: .5em; }
textarea.invalid { outline: 2px solid var(--bad); }
.row { display: flex; flex-wrap: wrap; gap: .8em; align-items: center; margin: .5em 0; }
.row input { font: inherit; padding: .2em .4em; }
button.send { background: var(--accent); color: white; border: 0; border-radius: 4px;
              padding: .4em 1.4em; font: inherit; cursor: pointer; }
button.send:disabled { opacity: .5; cursor: default; }
#status { font-weight: 600; }
#status.ok { color: var(--good); }
#status.failed { color: var(--bad); }
pre#body { border: 1px solid var(--line); padding: .6em; min-height: 3em;
           white-space: pre-wrap; word-break: break-word; }
.error-text { color: var(--bad); font-size: .9em; }
.hint { opacity: .7; }
"""

_SCRIPT: Final = r"""
'use strict';
const DATA = JSON.parse(document.getElementById('rpcx-data').textContent);
const methods = new Map();
const state = {current: null, drafts: new Map(), abort: null};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)),
                    (b) => b.toString(16).padStart(2, '0')).join('');
}

function buildNav() {
  const nav = document.getElementById('services');
  for (const service of DATA.services) {
    nav.append(el('h2', {text: service.name}));
    if (service.doc) nav.append(el('p', {class: 'doc', text: service.doc}));
    for (const method of service.methods) {
      methods.set(method.path, method);
      nav.append(el('button', {text: method.name, 'data-path': method.path,
                               title: method.doc || method.path,
                               onclick: () => { location.hash = method.path; }}));
    }
  }
  if (DATA.openapi) {
    const link = document.getElementById('openapi');
    link.href = DATA.openapi;
    link.hidden = false;
  }
}

function describe(method) {
  const tags = el('p', {class: 'tags'});
  const add = (text) => tags.append(el('span', {text}));
  if (method.streaming) add(method.streaming + ' streaming');
  if (method.streaming === 'client' || method.streaming === 'bidi') {
    add('not callable over HTTP: it streams from the client');
  }
  if (method.oneway) add('one-way');
  if (method.readonly) add('@readonly');
  else if (method.idempotent) add('@idempotent');
  if (method.deadline !== null) add('@deadline ' + method.deadline + ' s');
  if (method.deprecated !== null) {
    add('deprecated' + (method.deprecated ? ': ' + method.deprecated : ''));
  }
  const rows = method.params.map((p) => el('tr', {},
    el('td', {}, el('code', {text: p.name})), el('td', {}, el('code', {text: p.type})),
    el('td', {text: p.required ? 'required' : 'default ' + JSON.stringify(p.default)}),
    el('td', {class: 'doc', text: p.doc})));
  const table = rows.length ? el('table', {},
    el('tr', {}, el('th', {text: 'parameter'}), el('th', {text: 'type'}),
       el('th', {text: ''}), el('th', {text: ''})), ...rows) : el('p', {text: 'No parameters.'});
  const result = el('p', {}, 'Returns ', el('code', {text: method.result}),
    method.throws.length ? ' · throws ' : '',
    method.throws.length ? el('code', {text: method.throws.join(', ')}) : '');
  return [el('h2', {class: 'path', text: '/' + method.path}),
          method.doc ? el('p', {class: 'doc', text: method.doc}) : null, tags, table, result];
}

function show(path) {
  const method = methods.get(path);
  const section = document.getElementById('method');
  for (const button of document.querySelectorAll('nav button')) {
    button.setAttribute('aria-current', String(button.dataset.path === path));
  }
  if (!method) {
    section.replaceChildren(el('p', {class: 'hint', text: 'Pick a method on the left.'}));
    state.current = null;
    return;
  }
  if (state.current) state.drafts.set(state.current.path, document.getElementById('args').value);
  state.current = method;
  const editor = el('textarea', {id: 'args', spellcheck: 'false',
                                 'aria-label': 'arguments (JSON)'});
  editor.value = state.drafts.get(path) ?? JSON.stringify(method.example, null, 2);
  editor.rows = Math.min(30, editor.value.split('\n').length + 1);
  const problem = el('p', {id: 'args-error', class: 'error-text'});
  const send = el('button', {id: 'send', class: 'send', text: 'Send', onclick: () => call(method)});
  const stop = el('button', {id: 'stop', type: 'button', text: 'Stop', disabled: '',
                             onclick: () => { if (state.abort) state.abort.abort(); }});
  const check = () => {
    try { JSON.parse(editor.value); editor.classList.remove('invalid'); problem.textContent = '';
          send.disabled = false; }
    catch (error) { editor.classList.add('invalid'); problem.textContent = String(error.message);
                    send.disabled = true; }
  };
  editor.addEventListener('input', check);
  const timeout = el('input', {id: 'timeout', type: 'number', min: '0', step: 'any',
                               placeholder: 'none', size: '6'});
  const key = el('input', {id: 'idempotency-key', size: '38',
                           placeholder: method.idempotent || method.oneway ? 'not needed'
                                                                            : 'none'});
  const controls = el('div', {class: 'row'},
    send, stop,
    el('label', {}, 'timeout (s) ', timeout),
    el('label', {}, 'Idempotency-Key ', key),
    el('button', {id: 'new-key', type: 'button', text: 'new key',
                  onclick: () => { key.value = newKey(); }}),
    el('button', {id: 'reset', type: 'button', text: 'reset', onclick: () => {
      editor.value = JSON.stringify(method.example, null, 2); check(); }}));
  const outcome = el('div', {id: 'outcome'},
    el('div', {class: 'row'}, el('span', {id: 'status', text: '—'}),
       el('span', {id: 'rpcx-status'}), el('span', {id: 'timing'}),
       el('span', {id: 'messages'})),
    el('pre', {id: 'body', 'aria-label': 'response body'}));
  section.replaceChildren(...describe(method), editor, problem, controls, outcome);
  check();
}

// Reads the body as it arrives and calls onText with all the text so far: a unary answer
// arrives in one piece or a few; a stream of JSON lines will show line by line.
async function readBody(response, onText) {
  if (!response.body) { onText(await response.text(), true); return; }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    text += decoder.decode(value, {stream: true});
    onText(text, false);
  }
  text += decoder.decode();
  onText(text, true);
}

function pretty(text) {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  try {
    return lines.map((line) => JSON.stringify(JSON.parse(line), null, 2)).join('\n');
  } catch (error) {
    return text;
  }
}

// A server stream's lines so far: each complete line compact, the partial last one left
// out until it is complete; and how many of them are messages.
function streamLines(text) {
  const lines = text.split('\n');
  lines.pop(); // the part after the last newline: not complete yet
  let messages = 0;
  const shown = lines.filter((line) => line.trim() !== '').map((line) => {
    try {
      const value = JSON.parse(line);
      if (value && typeof value === 'object' && 'message' in value) messages += 1;
      return JSON.stringify(value);
    } catch (error) {
      return line;
    }
  });
  return {text: shown.join('\n'), messages};
}

async function call(method) {
  const status = document.getElementById('status');
  const rpcxStatus = document.getElementById('rpcx-status');
  const timing = document.getElementById('timing');
  const body = document.getElementById('body');
  const send = document.getElementById('send');
  const headers = {'Content-Type': 'application/json'};
  const timeout = document.getElementById('timeout').value.trim();
  if (timeout) headers['rpcx-timeout'] = timeout;
  const key = document.getElementById('idempotency-key').value.trim();
  if (key) headers['Idempotency-Key'] = '"' + key.replace(/["\\]/g, '\\$&') + '"';
  status.className = '';
  status.textContent = 'sending…';
  const messages = document.getElementById('messages');
  const stop = document.getElementById('stop');
  rpcxStatus.textContent = timing.textContent = body.textContent = messages.textContent = '';
  send.disabled = true;
  const controller = new AbortController();
  state.abort = controller;
  stop.disabled = false;
  const started = performance.now();
  let firstByte = null;
  try {
    const response = await fetch('/' + method.path, {
      method: 'POST', headers, body: document.getElementById('args').value,
      signal: controller.signal});
    firstByte = performance.now() - started;
    status.textContent = response.status + ' ' + response.statusText;
    status.className = response.ok ? 'ok' : 'failed';
    rpcxStatus.textContent = response.headers.get('rpcx-status') || '';
    const streaming = (response.headers.get('content-type') || '')
      .startsWith('application/x-ndjson');
    await readBody(response, (text, done) => {
      if (streaming) {
        const lines = streamLines(done ? text + '\n' : text);
        body.textContent = lines.text;
        messages.textContent = lines.messages + (lines.messages === 1 ? ' message' : ' messages');
      } else {
        body.textContent = done ? pretty(text) : text;
      }
      timing.textContent = (performance.now() - started).toFixed(1) + ' ms' +
        (done ? '' : ' so far');
    });
    timing.textContent = (performance.now() - started).toFixed(1) + ' ms (first byte ' +
      firstByte.toFixed(1) + ' ms)';
  } catch (error) {
    if (error.name === 'AbortError') {
      status.textContent += ' · stopped';
    } else {
      status.textContent = 'network error';
      status.className = 'failed';
      body.textContent = String(error);
    }
    timing.textContent = (performance.now() - started).toFixed(1) + ' ms';
  } finally {
    send.disabled = false;
    stop.disabled = true;
    state.abort = null;
    document.body.dataset.calls = String(Number(document.body.dataset.calls || 0) + 1);
  }
}

buildNav();
window.addEventListener('hashchange', () => show(decodeURIComponent(location.hash.slice(1))));
show(decodeURIComponent(location.hash.slice(1)));
"""
