"""Atheris target: the typed CBOR codec decoding arbitrary bytes against the payments
request and a schema with every kind of field.

    python fuzz/fuzz_cbor_codec.py -atheris_runs=1000000      # (see fuzz/README.md)

The property (``rpcx.testing.fuzzing.check_codec_input``): decoding gives a value or a
CodecError, never another exception, and the error's text (which INVALID_ARGUMENT carries
to the peer) is plain and bounded.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from examples.payments.payments_rpcx import PaymentsService
    from rpcx.codec import CborCodec
    from rpcx.schema import spec_of
    from rpcx.testing.fuzzing import check_codec_input

CODEC = CborCodec(max_message_bytes=1 << 16)
SCHEMAS = [method.params for method in spec_of(PaymentsService).methods]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    check_codec_input(CODEC, SCHEMAS[data[0] % len(SCHEMAS)], data[1:])


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
