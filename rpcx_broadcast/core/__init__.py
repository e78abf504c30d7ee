"""Sans-I/O broadcast cores."""
from __future__ import annotations
