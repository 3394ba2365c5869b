"""Writing pmemd-generator's cache (replayed at boot by
:mod:`pmemd.fastpath.generator_cache`): the output the full generator computes now, keyed
by exactly what it depends on.

Whatever already runs with the full code after boot writes it — ``pmemd reconcile`` (also
after the converged stamp's fast path, when the cache is missing or stale), the D-Bus
service after SetConfig and Reload, ``pmemd generator-cache``. The generator never does.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum

from pmemd.errors import UnreadableFile
from pmemd.fastpath.fingerprint import remember_code
from pmemd.fastpath.generator_cache import cache_key, render_cache
from pmemd.fastpath.generator_runtime import Log
from pmemd.generator.generate import generate_from, read_generator_config
from pmemd.machine.atomic import remove_durably, write_atomic
from pmemd.machine.root import Machine

remember_code()  # the code this process runs is the code the caches it writes are for


class CacheResult(StrEnum):
    """What :func:`refresh_generator_cache` did."""

    WRITTEN = "written"
    CURRENT = "current"  # the file already held this output under this key
    REMOVED = "removed"  # the output cannot be cached: a stale file was removed
    FAILED = "failed"


def _yaml_dirs() -> tuple[str, ...]:
    """PyYAML's package (and its C extension's directory), when the config parser has
    loaded it: the output depends on that code too."""
    found = []
    for name in ("yaml", "_yaml"):
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            found.append(os.path.dirname(os.path.abspath(where)))  # noqa: PTH100, PTH120
    return tuple(dict.fromkeys(found))


def render_generator_cache(machine: Machine) -> str | None:
    """The cache for ``machine`` as it is now; ``None`` when its output cannot be cached
    (the config cannot be read, the generator fails unexpectedly)."""
    try:
        data = read_generator_config(machine)
    except UnreadableFile:
        return None
    log = Log(echo=False)
    try:
        generated = generate_from(machine, data, log)
    except Exception:  # the full generator logs it; nothing worth replaying
        return None
    key = cache_key(str(machine.root), initrd_release=str(machine.initrd_release),
                    config=str(machine.config), config_data=data, code_dirs=_yaml_dirs(),
                    firmware=str(machine.firmware_memmap) if generated.read_firmware else None)
    outputs = [(f.path, f.text, f.link) for f in generated.files]
    return render_cache(key, str(machine.kmsg), outputs, log.records)


def refresh_generator_cache(machine: Machine) -> tuple[CacheResult, str]:
    """Write (or keep, or remove) the cache for ``machine``; never raises for I/O. Says
    what it did, and why it failed."""
    path = machine.generator_cache
    try:
        text = render_generator_cache(machine)
        if text is None:
            existed = path.exists()
            remove_durably(path)
            return (CacheResult.REMOVED if existed else CacheResult.CURRENT), ""
        try:
            if path.read_text(encoding="ascii") == text:
                return CacheResult.CURRENT, ""
        except (OSError, ValueError):
            pass
        write_atomic(path, text, mode=0o644)
        return CacheResult.WRITTEN, ""
    except OSError as err:
        return CacheResult.FAILED, f"{err.filename or path}: {err.strerror}"
