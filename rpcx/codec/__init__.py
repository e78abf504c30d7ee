"""Marshalling, driven by the runtime schema."""
