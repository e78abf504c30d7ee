"""Test helpers: the deterministic simulator and the history checkers."""

from __future__ import annotations

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

__all__ = ["Event", "FaultPlan", "History", "SimConfig", "SimResult", "Violation", "check",
           "replay", "run_scenario", "simulate"]
