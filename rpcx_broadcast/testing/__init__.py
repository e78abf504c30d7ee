"""Testing helpers: simulator and checkers."""
from __future__ import annotations
