"""A replicated key-value store: state machine replication on FIFO-total order."""
