"""invoice-sync's processes: the CLI, the sync engine, and (later) the daemon's actors."""
