"""Bounded incremental receive buffer: bytes in, preface then whole frames out.

The buffer never holds more than one frame's worth of unparsed data plus whatever the
last ``feed`` added. A frame whose ``body_length`` exceeds ``max_frame_size`` is not
buffered: :meth:`ReceiveBuffer.next_item` reports it as :class:`Oversized` as soon as its
header is complete and then silently discards its body as the bytes arrive. The length
prefix is what makes that possible, so one oversized call does not break the stream.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from rpcx._mypyc import mypyc_attr
from rpcx.errors import RemoteProtocolError
from rpcx.protocol._wire import HEADER, PREFACE, FrameHeader, parse_header
from rpcx.text import describe

__all__ = ["Oversized", "RawFrame", "ReceiveBuffer"]


class RawFrame(NamedTuple):
    """A complete frame: its header and its body (meta + payload), not yet parsed."""

    header: FrameHeader
    body: bytes


@mypyc_attr(native_class=False)
@attrs.frozen
class Oversized:
    """A frame whose body is larger than the limit; its body is being skipped."""

    header: FrameHeader


class ReceiveBuffer:
    """Accumulates received bytes; hands out the preface check and then whole frames."""

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        """The largest ``body_length`` accepted; larger frames come out as :class:`Oversized`."""
        self._data = bytearray()
        self._preface_done = False
        self._skip = 0
        self.frames = 0
        """How many items (frames and :class:`Oversized` notices) have been handed out."""

    def __repr__(self) -> str:
        return (f"ReceiveBuffer(max_frame_size={self.max_frame_size!r}, held={len(self._data)}, "
                f"frames={self.frames!r})")

    def feed(self, data: bytes) -> None:
        """Append received bytes (discarding any that belong to a skipped body)."""
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._data += data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def preface_done(self) -> bool:
        """True once the peer's preface has been received and checked."""
        return self._preface_done

    def check_preface(self) -> bool:
        """Consume the peer's preface if complete; True when done.

        Fails as early as the first wrong byte, so talking to the wrong kind of peer
        (an HTTP client, say) is reported at once rather than after a timeout.
        """
        if self._preface_done:
            return True
        got = bytes(self._data[: len(PREFACE)])
        magic = PREFACE[:-2]
        if got[: len(magic)] != magic[: len(got)]:
            raise RemoteProtocolError(
                f"peer is not speaking rpcx: expected the preface h'{PREFACE.hex()}' "
                f"(\"RPCX\" CR LF, version), got {describe(got)}"
            )
        if len(got) < len(PREFACE):
            return False
        version = int.from_bytes(got[-2:], "big")
        if got != PREFACE:
            raise RemoteProtocolError(
                f"peer speaks rpcx protocol version {version}, "
                f"this side speaks {int.from_bytes(PREFACE[-2:], 'big')}"
            )
        del self._data[: len(PREFACE)]
        self._preface_done = True
        return True

    def next_item(self) -> RawFrame | Oversized | None:
        """The next complete frame, an :class:`Oversized` notice, or None for "need more"."""
        if len(self._data) < HEADER.size:
            return None
        header = parse_header(self._data)
        if header.body_length > self.max_frame_size:
            available = len(self._data) - HEADER.size
            dropped = min(available, header.body_length)
            del self._data[: HEADER.size + dropped]
            self._skip = header.body_length - dropped
            self.frames += 1
            return Oversized(header)
        end = HEADER.size + header.body_length
        if len(self._data) < end:
            return None
        body = bytes(self._data[HEADER.size:end])
        del self._data[:end]
        self.frames += 1
        return RawFrame(header, body)

    def refuse(self) -> FrameHeader | None:
        """Give up the incomplete frame held now: drop its bytes and skip the rest of its
        body as it arrives. Returns its header (None if not even the header is complete,
        or the preface is not done: then nothing is dropped)."""
        if not self._preface_done or len(self._data) < HEADER.size:
            return None
        header = parse_header(self._data)
        held = len(self._data) - HEADER.size
        del self._data[:]
        self._skip = header.body_length - held
        self.frames += 1
        return header

    def clear(self) -> None:
        """Forget everything held (the connection has ended)."""
        del self._data[:]
        self._skip = 0
