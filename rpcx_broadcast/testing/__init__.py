"""Test helpers: the deterministic simulator, the history checkers and the linearizability
checker."""

from __future__ import annotations

from .linearizability import UNKNOWN as UNKNOWN
from .linearizability import Cas as Cas
from .linearizability import KeyValue as KeyValue
from .linearizability import Model as Model
from .linearizability import Operation as Operation
from .linearizability import Outcome as Outcome
from .linearizability import Read as Read
from .linearizability import Recorder as Recorder
from .linearizability import Register as Register
from .linearizability import Unknown as Unknown
from .linearizability import Verdict as Verdict
from .linearizability import Write as Write
from .linearizability import assert_linearizable as assert_linearizable
from .linearizability import check_linearizable as check_linearizable
from .properties import Event as Event
from .properties import History as History
from .properties import Violation as Violation
from .properties import check as check
from .sim import FaultPlan as FaultPlan
from .sim import SimConfig as SimConfig
from .sim import SimResult as SimResult
from .sim import replay as replay
from .sim import run_scenario as run_scenario
from .sim import simulate as simulate

__all__ = ["Cas", "Event", "FaultPlan", "History", "KeyValue", "Model", "Operation", "Outcome",
           "Read", "Recorder", "Register", "SimConfig", "SimResult", "UNKNOWN", "Unknown",
           "Verdict", "Violation", "Write", "assert_linearizable", "check",
           "check_linearizable", "replay", "run_scenario", "simulate"]
