"""The payments demo: start the server process, run the client process against it.

    python -m examples.payments
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def main() -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        # A Unix socket in a private directory: no port to collide with.
        address = f"unix://{tmp}/payments.sock"
        print(f"Starting the payments server on {address} ...", flush=True)
        relay: subprocess.Popen[bytes] | None = None
        server = subprocess.Popen(
            [sys.executable, "-m", "examples.payments.server", address],
            stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("listening on"):
                print(f"the server did not start: {line!r}", file=sys.stderr)
                return 1
            print(f"  [server] {line.strip()}", flush=True)
            # Pass the server's log through to this terminal while the client runs.
            relay = subprocess.Popen(["cat"], stdin=server.stdout)
            code = subprocess.call([sys.executable, "-m", "examples.payments.client", address],
                                   env=env)
        finally:
            server.terminate()
            server.wait(timeout=10)
            if relay is not None:
                relay.wait(timeout=10)
        return code


if __name__ == "__main__":
    sys.exit(main())
