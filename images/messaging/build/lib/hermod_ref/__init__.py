"""Reference implementation of the Smart ID Messaging (Hermod) protocol."""

__version__ = "1.1.0"
