"""The sans-I/O rpcx wire protocol: bytes in, events out; calls in, bytes out.

Nothing in this package does I/O or reads a clock; the trio runtime drives a
:class:`Connection` and shares one :class:`DedupCache` between a server's connections.
``docs/protocol.md`` is the wire specification.
"""

from __future__ import annotations

from rpcx.protocol.call import CallInput as CallInput
from rpcx.protocol.call import CallState as CallState
from rpcx.protocol.call import Role as Role
from rpcx.protocol.connection import Connection as Connection
from rpcx.protocol.connection import ConnectionState as ConnectionState
from rpcx.protocol.dedup import DedupCache as DedupCache
from rpcx.protocol.dedup import EntryState as EntryState
from rpcx.protocol.dedup import Execute as Execute
from rpcx.protocol.dedup import Overloaded as Overloaded
from rpcx.protocol.dedup import Replay as Replay
from rpcx.protocol.dedup import Wait as Wait
from rpcx.protocol.events import CallAborted as CallAborted
from rpcx.protocol.events import CancelReceived as CancelReceived
from rpcx.protocol.events import ConnectionTerminated as ConnectionTerminated
from rpcx.protocol.events import DeadlineExpired as DeadlineExpired
from rpcx.protocol.events import ErrorReceived as ErrorReceived
from rpcx.protocol.events import Event as Event
from rpcx.protocol.events import GoAwayReceived as GoAwayReceived
from rpcx.protocol.events import PingAcked as PingAcked
from rpcx.protocol.events import RequestReceived as RequestReceived
from rpcx.protocol.events import ResponseReceived as ResponseReceived
from rpcx.protocol.events import TerminationReason as TerminationReason
from rpcx.protocol.frames import PREFACE as PREFACE
from rpcx.protocol.frames import PROTOCOL_VERSION as PROTOCOL_VERSION

__all__ = [
    "PREFACE",
    "PROTOCOL_VERSION",
    "CallAborted",
    "CallInput",
    "CallState",
    "CancelReceived",
    "Connection",
    "ConnectionState",
    "ConnectionTerminated",
    "DeadlineExpired",
    "DedupCache",
    "EntryState",
    "ErrorReceived",
    "Event",
    "Execute",
    "GoAwayReceived",
    "Overloaded",
    "PingAcked",
    "Replay",
    "RequestReceived",
    "ResponseReceived",
    "Role",
    "TerminationReason",
    "Wait",
]
