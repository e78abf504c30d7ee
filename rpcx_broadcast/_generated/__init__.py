"""Stubs generated from ``idl/broadcast.rpcx`` (``rpcx gen``); do not edit them by hand."""

from __future__ import annotations
