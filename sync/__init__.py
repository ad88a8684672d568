"""The sync protocol: server engine, Python reference client and weak-network proxy (no Flask)."""
