"""trio adapters that drive the protocol over transports and apply codecs."""
