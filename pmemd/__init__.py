"""pmemd: declarative emulated persistent memory (memmap=) as a systemd service."""

__version__ = "0.1.0"
