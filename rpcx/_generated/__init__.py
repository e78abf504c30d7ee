"""Modules generated from rpcx's own IDL files (``idl/reflection.rpcx``); committed, and
checked to be current by ``.ci/run``."""
