"""hookd: the outbound-webhook daemon of an on-premise CRM."""

__version__ = "0.1.0"
