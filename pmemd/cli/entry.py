"""The ``pmemd`` program. A plain ``pmemd reconcile`` that changes nothing — what
``pmemd-reconcile.service`` runs at every boot — is answered from the converged stamp
(:mod:`pmemd.fastpath.converged`) without importing the rest of pmemd; everything else goes
to :mod:`pmemd.cli.pmemd`. Keep this module's imports to ``sys``."""

import sys


def _keep_generator_cache(root: str) -> None:
    """After a replay: make the generator's cache again when it is missing or stale (a new
    config, a pmemd upgrade). Checking costs a read and a few stats; only making it imports
    the full code."""
    from pmemd.fastpath.generator_cache import cache_is_current

    if cache_is_current(root):
        return
    from pathlib import Path

    from pmemd.generator.cache import refresh_generator_cache
    from pmemd.machine.root import Machine

    refresh_generator_cache(Machine(Path(root)))


def main() -> int:
    from pmemd.fastpath.converged import invocation, replay_converged

    argv = sys.argv[1:]
    replayed = replay_converged(argv)
    if replayed is not None:
        found = invocation(argv)
        assert found is not None  # replayed: it was a plain reconcile
        _keep_generator_cache(found[0])
        return replayed
    from pmemd.cli.pmemd import main as cli_main

    return cli_main()
