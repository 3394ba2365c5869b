"""Bootloader backends, one module each: read the next boot's command line from the
bootloader's own files, and change it through the distribution's tool.

This package's ``__init__`` stays empty: ``pmemd reconcile`` imports only what it uses."""
