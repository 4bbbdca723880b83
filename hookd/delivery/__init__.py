"""Sending: the HTTP client, the scheduler, alerts (docs/ARCHITECTURE.md)."""
