"""Atheris target: the sans-I/O connection (frame parser and state machine) on arbitrary
byte streams, in both roles.

    python fuzz/fuzz_frames.py -atheris_runs=1000000      # (see fuzz/README.md)

The first byte picks the role, whether the peer's preface is prepended and where the rest
is cut into reads. The property (``rpcx.testing.fuzzing.check_frame_stream``): only
RemoteProtocolError comes out of the core; every byte it sends back parses as frames that
fit their limits; no message in them holds Python notation or exceeds 1 KiB.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from rpcx.protocol import Role
    from rpcx.testing.fuzzing import check_frame_stream


def test_one_input(data: bytes) -> None:
    if not data:
        return
    control, rest = data[0], data[1:]
    role = Role.SERVER if control & 1 else Role.CLIENT
    step = 1 + (control >> 2)  # reads of 1..64 bytes
    chunks = [rest[i:i + step] for i in range(0, len(rest), step)]
    check_frame_stream(role, chunks, with_preface=not control & 2)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
