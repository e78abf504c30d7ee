"""Sans-I/O broadcast cores: layers are state machines, events in and actions out.

Nothing here does I/O, reads a clock or draws random numbers: time is passed in, and
every entry point returns ``Send`` / ``Deliver`` / ``SetTimer`` / ``CancelTimer`` actions.
"""

from __future__ import annotations

from .actions import Action as Action
from .actions import CancelTimer as CancelTimer
from .actions import Deliver as Deliver
from .actions import Down as Down
from .actions import Send as Send
from .actions import SetTimer as SetTimer
from .actions import StartPoint as StartPoint
from .actions import Wire as Wire
from .causal import CausalBroadcast as CausalBroadcast
from .failure_detector import HeartbeatFailureDetector as HeartbeatFailureDetector
from .fifo import FifoBroadcast as FifoBroadcast
from .fifo_total import fifo_total_sequencer as fifo_total_sequencer
from .fifo_total import lamport_fifo_total as lamport_fifo_total
from .gossip import BySize as BySize
from .gossip import GossipBroadcast as GossipBroadcast
from .gossip import Hub as Hub
from .gossip import RandomPeers as RandomPeers
from .gossip import RelayAll as RelayAll
from .gossip import Topology as Topology
from .holdback import HoldBack as HoldBack
from .holdback import HoldBackOverflow as HoldBackOverflow
from .layer import BufferFull as BufferFull
from .layer import Joinable as Joinable
from .layer import Layer as Layer
from .layer import ProtocolViolation as ProtocolViolation
from .layer import Stack as Stack
from .links import ReliableLinks as ReliableLinks
from .membership import DynamicMembership as DynamicMembership
from .membership import StaticMembership as StaticMembership
from .membership import View as View
from .raft import ConfigChangeRefused as ConfigChangeRefused
from .raft import NotLeader as NotLeader
from .raft import RaftError as RaftError
from .raft import RaftNode as RaftNode
from .raft import RaftOptions as RaftOptions
from .raft import ReadIndexUnavailable as ReadIndexUnavailable
from .raft import Ready as Ready
from .raft import Role as Role
from .raft_messages import Config as Config
from .raft_messages import ConfigChange as ConfigChange
from .raft_messages import ConfigOp as ConfigOp
from .raft_messages import Entry as Entry
from .raft_messages import EntryKind as EntryKind
from .raft_messages import HardState as HardState
from .raft_messages import Snapshot as Snapshot
from .reliable import BestEffortBroadcast as BestEffortBroadcast
from .reliable import EagerReliableBroadcast as EagerReliableBroadcast
from .storage import MemoryStorage as MemoryStorage
from .storage import Recovered as Recovered
from .storage import Storage as Storage
from .total import LamportTotal as LamportTotal
from .total import SequencerTotal as SequencerTotal

__all__ = [
    "Action", "BestEffortBroadcast", "BufferFull", "BySize", "CancelTimer", "CausalBroadcast",
    "Config", "ConfigChange", "ConfigChangeRefused", "ConfigOp", "Deliver", "Down",
    "DynamicMembership", "EagerReliableBroadcast", "Entry", "EntryKind", "FifoBroadcast",
    "GossipBroadcast", "HardState", "HeartbeatFailureDetector", "HoldBack",
    "HoldBackOverflow", "Hub", "Joinable", "LamportTotal", "Layer", "MemoryStorage",
    "NotLeader", "ProtocolViolation", "RaftError", "RaftNode", "RaftOptions", "RandomPeers",
    "ReadIndexUnavailable", "Ready", "Recovered", "RelayAll", "ReliableLinks", "Role", "Send",
    "SequencerTotal", "SetTimer", "Snapshot", "Stack", "StartPoint", "StaticMembership",
    "Storage", "Topology", "View", "Wire", "fifo_total_sequencer", "lamport_fifo_total",
]
