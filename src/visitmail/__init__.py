"""visitmail: outgoing mail for a lead-capture platform."""

__version__ = "0.1.0"
