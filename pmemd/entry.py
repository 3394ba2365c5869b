"""The ``pmemd`` program. A plain ``pmemd reconcile`` that changes nothing — what
``pmemd-reconcile.service`` runs at every boot — is answered from the converged stamp
without importing the rest of pmemd (see :mod:`pmemd.bootloader.stamp`); everything else
goes to :mod:`pmemd.cli`. Keep this module's imports to ``sys``."""

import sys


def main() -> int:
    from pmemd.bootloader.stamp import replay_converged

    replayed = replay_converged(sys.argv[1:])
    if replayed is not None:
        return replayed
    from pmemd.cli import main as cli_main

    return cli_main()
