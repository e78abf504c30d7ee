"""rpcx: typed, pluggable RPC for Python on trio."""
