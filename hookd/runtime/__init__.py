"""The process: daemon, listeners, systemd, config, logs, metrics (docs/ARCHITECTURE.md)."""
