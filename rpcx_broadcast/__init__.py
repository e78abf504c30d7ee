"""rpcx_broadcast."""
from __future__ import annotations
