"""rpcx_broadcast: group communication (reliable, FIFO, causal, total, FIFO-total).

The public API: ``open_group`` and ``Group`` (the trio runtime over rpcx, see
``rpcx_broadcast.runtime``), ``open_replica`` (replicated state machines with their order
declared, see ``rpcx_broadcast.replicated``), the sans-I/O layer classes and ``Stack`` (see
``rpcx_broadcast.core``), the history checkers and the linearizability checker
``check_linearizable`` (its models and operation types are in ``rpcx_broadcast.testing``),
and ``serve_replicated`` (a replicated rpcx service, see
``rpcx_broadcast.replicated_service`` and docs/replication.md).
"""

from __future__ import annotations

from ._generated.replicated_rpcx import ReplicaStatus as ReplicaStatus
from ._generated.replicated_rpcx import ReplicationClient as ReplicationClient
from .core import BestEffortBroadcast as BestEffortBroadcast
from .core import BufferFull as BufferFull
from .core import CancelTimer as CancelTimer
from .core import CausalBroadcast as CausalBroadcast
from .core import Deliver as Deliver
from .core import DynamicMembership as DynamicMembership
from .core import EagerReliableBroadcast as EagerReliableBroadcast
from .core import FifoBroadcast as FifoBroadcast
from .core import GossipBroadcast as GossipBroadcast
from .core import HeartbeatFailureDetector as HeartbeatFailureDetector
from .core import LamportTotal as LamportTotal
from .core import Layer as Layer
from .core import MemoryStorage as MemoryStorage
from .core import NotLeader as NotLeader
from .core import RaftNode as RaftNode
from .core import RaftOptions as RaftOptions
from .core import Send as Send
from .core import SequencerTotal as SequencerTotal
from .core import SetTimer as SetTimer
from .core import Stack as Stack
from .core import StaticMembership as StaticMembership
from .core import Storage as Storage
from .core import View as View
from .replicated import Replica as Replica
from .replicated import ReplicationWarning as ReplicationWarning
from .replicated import StateMachine as StateMachine
from .replicated import commutative as commutative
from .replicated import open_replica as open_replica
from .replicated_service import MAX_STALENESS as MAX_STALENESS
from .replicated_service import Divergence as Divergence
from .replicated_service import ReplicatedService as ReplicatedService
from .replicated_service import ReplicatedStatistics as ReplicatedStatistics
from .replicated_service import serve_replicated as serve_replicated
from .replicated_service import stale_reads as stale_reads
from .runtime import CAUSAL as CAUSAL
from .runtime import FIFO as FIFO
from .runtime import FIFO_TOTAL as FIFO_TOTAL
from .runtime import LAMPORT_FIFO_TOTAL as LAMPORT_FIFO_TOTAL
from .runtime import RAFT as RAFT
from .runtime import RELIABLE as RELIABLE
from .runtime import TOTAL as TOTAL
from .runtime import Delivery as Delivery
from .runtime import Group as Group
from .runtime import GroupStatistics as GroupStatistics
from .runtime import JoinError as JoinError
from .runtime import NotAMember as NotAMember
from .runtime import open_group as open_group
from .storage import CorruptStorage as CorruptStorage
from .storage import FileStorage as FileStorage
from .testing.linearizability import assert_linearizable as assert_linearizable
from .testing.linearizability import check_linearizable as check_linearizable
from .testing.properties import Event as Event
from .testing.properties import History as History
from .testing.properties import Violation as Violation
from .testing.properties import check as check
from .testing.properties import check_agreement as check_agreement
from .testing.properties import check_causal as check_causal
from .testing.properties import check_fifo as check_fifo
from .testing.properties import check_fifo_total as check_fifo_total
from .testing.properties import check_integrity as check_integrity
from .testing.properties import check_no_duplication as check_no_duplication
from .testing.properties import check_prefix_consistency as check_prefix_consistency
from .testing.properties import check_restores as check_restores
from .testing.properties import check_total as check_total
from .testing.properties import check_uniform_agreement as check_uniform_agreement
from .testing.properties import check_validity as check_validity
from .testing.properties import count_duplicates as count_duplicates
from .testing.properties import fill_restores as fill_restores

__all__ = [
    "BestEffortBroadcast", "BufferFull", "CAUSAL", "CancelTimer", "CausalBroadcast",
    "CorruptStorage", "Deliver", "Delivery", "Divergence", "DynamicMembership",
    "EagerReliableBroadcast", "Event", "FIFO", "FIFO_TOTAL", "FifoBroadcast", "FileStorage",
    "GossipBroadcast", "Group", "GroupStatistics", "HeartbeatFailureDetector", "History",
    "JoinError", "LAMPORT_FIFO_TOTAL", "LamportTotal", "Layer", "MAX_STALENESS",
    "MemoryStorage", "NotAMember", "NotLeader", "RAFT", "RELIABLE", "RaftNode", "RaftOptions",
    "Replica", "ReplicaStatus", "ReplicatedService", "ReplicatedStatistics",
    "ReplicationClient", "ReplicationWarning", "Send", "SequencerTotal", "SetTimer", "Stack",
    "StateMachine", "StaticMembership", "Storage", "TOTAL", "View", "Violation",
    "assert_linearizable", "check", "check_agreement", "check_causal", "check_fifo",
    "check_fifo_total", "check_integrity", "check_linearizable", "check_no_duplication",
    "check_prefix_consistency", "check_restores", "check_total", "check_uniform_agreement",
    "check_validity", "commutative", "count_duplicates", "fill_restores", "open_group",
    "open_replica", "serve_replicated", "stale_reads",
]
