"""The web console under /ui/ on the TCP listener (docs/ARCHITECTURE.md, "Layers")."""
