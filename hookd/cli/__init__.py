"""The `hookd` command: entry point, API client, output, commands (docs/ARCHITECTURE.md)."""
