"""What became of every alert: the append-only log and the figures read from it."""
