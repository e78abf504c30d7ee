"""Trio adapters: run broadcast stacks over rpcx transports (``open_group``)."""

from __future__ import annotations

from .group import CAUSAL as CAUSAL
from .group import FIFO as FIFO
from .group import FIFO_TOTAL as FIFO_TOTAL
from .group import JOINABLE_ORDERS as JOINABLE_ORDERS
from .group import LAMPORT_FIFO_TOTAL as LAMPORT_FIFO_TOTAL
from .group import ORDERS as ORDERS
from .group import RAFT as RAFT
from .group import RELIABLE as RELIABLE
from .group import TOTAL as TOTAL
from .group import Group as Group
from .group import make_stack as make_stack
from .group import open_group as open_group
from .node import Delivery as Delivery
from .node import GroupStatistics as GroupStatistics
from .node import JoinError as JoinError
from .node import JoinStart as JoinStart
from .node import Node as Node
from .node import NotAMember as NotAMember
from .raft_node import RaftMember as RaftMember

__all__ = ["CAUSAL", "FIFO", "FIFO_TOTAL", "JOINABLE_ORDERS", "LAMPORT_FIFO_TOTAL", "ORDERS",
           "RAFT", "RELIABLE", "TOTAL", "Delivery", "Group", "GroupStatistics", "JoinError",
           "JoinStart", "Node", "NotAMember", "RaftMember", "make_stack", "open_group"]
