"""Bootloader backends: read the next boot's command line from the bootloader's own files,
and change it through the distribution's tool.

One module per backend (``update_grub``, ``grubby``, ``mkconfig``, ``kernel_install``),
``detect`` to pick one and say why, ``apply`` to write, run, check and roll back.
This package's ``__init__`` stays empty: ``pmemd reconcile`` imports only what it uses.
"""
