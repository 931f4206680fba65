"""evhub wire layer: message kinds, msgpack codec, framing, session (no I/O)."""
