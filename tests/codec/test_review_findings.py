"""Codec bugs found in review: each test failed before its fix."""

from __future__ import annotations

import pytest

from rpcx.codec import JsonCodec
from rpcx.errors import CodecError
from rpcx.schema import INT, STRING, map_of

J = JsonCodec()


def test_a_lone_surrogate_map_key_gives_an_error_message_that_is_valid_unicode() -> None:
    # The path segment of the key used to carry the raw surrogate, so the message could not
    # be encoded as UTF-8 (the HTTP gateway answers with it, the CLI prints it).
    with pytest.raises(CodecError) as info:
        J.decode(map_of(STRING, INT), b'{"\\ud800": 1}')
    message = str(info.value)
    message.encode("utf-8")
    assert "lone surrogate" in message
    assert "\\ud800" in message
