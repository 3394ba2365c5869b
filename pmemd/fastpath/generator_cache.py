"""The generator's cache: pmemd-generator's complete output, keyed by the exact content of
everything that output depends on, so that at boot it is replayed with nothing but ``os``.

The generator runs on every boot's critical path. Computing its output means parsing YAML
and building the config model, which costs several times an interpreter's start-up; the
output itself depends only on

* the config file's bytes (as much of them as the generator reads),
* the firmware memory map's content, when a region is placed by pmemd (no offset),
* the code that renders it: pmemd's modules and PyYAML's (identities: inode, size, times),
  pmemd's version and the interpreter's,
* the root it was computed for (log lines name paths under it),

and not on this boot's state (the running kernel's map, devices, mounts). A process that
already has the full code loaded — ``pmemd reconcile`` (also on the converged stamp's fast
path, when the cache is missing or stale), the D-Bus service after SetConfig and Reload,
``pmemd generator-cache`` — renders the output and writes it here, atomically, with that
key. The generator (:func:`replay_cached`) reads it, compares every part of the key
byte for byte and, on a hit, creates exactly the cached files (exclusively, as the full
path does) and logs the cached lines. Any difference, a damaged or unreadable file (``/var``
may not be mounted yet at generator time, and the root file system may then hold a stale
leftover under the mount point: the exact key makes that harmless) or anything unexpected
is a miss: the full generator runs, unchanged. The generator never writes this file.

The file is a :mod:`pmemd.fastpath.keyfile`; this module knows its key and its data and
must import nothing heavy (``os``, ``sys``, ``zlib``). Writing it is
:mod:`pmemd.generator.cache`'s, with the full code.
"""

from __future__ import annotations

import os

from pmemd import __version__
from pmemd.fastpath import keyfile
from pmemd.fastpath.fingerprint import (
    MISSING,
    PACKAGE,
    code_files,
    code_identity,
    hexed,
    tree,
    unhexed,
)
from pmemd.fastpath.generator_runtime import (
    CONFIG_READ_LIMIT,
    Output,
    open_log,
    parse_arguments,
    write_outputs,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

MAGIC = "pmemd-generator-cache 2"
# Under the root; the same file as pmemd.machine.root.Machine.generator_cache (tested).
CACHE = "var/lib/pmemd/generator-cache"
# A cache without these key parts is no cache (never a guess).
REQUIRED = ("python", "version", "package", "root", "not-initrd", "head")

Record = tuple[int, str]  # a log line: syslog level, message


def _invocation(root: str) -> dict[str, list[str]]:
    """What a cache must have been written for: this interpreter, this installation of
    pmemd (its version and its place) and this root (log lines name paths under it)."""
    return {"python": [keyfile.python_line()[1]], "version": [hexed(__version__)],
            "package": [hexed(PACKAGE)], "root": [hexed(root)]}


def cache_key(root: str, *, initrd_release: str, config: str, config_data: bytes | None,
              code_dirs: Sequence[str] = (), firmware: str | None = None
              ) -> list[keyfile.Line]:
    """The key of an output computed for ``root`` from ``config_data`` (the first
    :data:`CONFIG_READ_LIMIT` bytes of ``config``; ``None``: no config), by pmemd's code and
    the modules in ``code_dirs``, and — when ``firmware`` names it — the firmware map."""
    invocation = _invocation(root)
    key: list[keyfile.Line] = [(kind, *invocation[kind]) for kind in
                               ("python", "version", "package", "root")]
    key.append(("not-initrd", hexed(initrd_release)))
    key.append(("head", hexed(config), str(CONFIG_READ_LIMIT),
                MISSING if config_data is None else config_data.hex()))
    key += [("code", hexed(p), code_identity(p)) for p in code_files(code_dirs)]
    if firmware is not None:
        key.append(("tree", hexed(firmware), tree(firmware)))
    return key


def render_cache(key: Sequence[keyfile.Line], kmsg: str, outputs: Sequence[Output],
                 records: Sequence[Record]) -> str:
    """(pure) The cache file: the key, then where to log, the files and the log lines."""
    data: list[keyfile.Line] = [("kmsg", hexed(kmsg))]
    for path, text, link in outputs:
        data.append(("link", hexed(path), hexed(link)) if link is not None
                    else ("file", hexed(path), hexed(text)))
    data += [("log", str(level), hexed(message)) for level, message in records]
    return keyfile.render(MAGIC, key, data)


def _inside(path: str) -> str:
    """``path`` when it stays inside the output directory (a generator writes nowhere
    else, whatever a cache says)."""
    if not path or path.startswith("/") or ".." in path.split("/") or "\0" in path:
        raise ValueError(f"not a path inside the output directory: {path!r}")
    return path


def _output(data: Sequence[keyfile.Line]) -> tuple[str, list[Output], list[Record]] | None:
    kmsg = None
    outputs: list[Output] = []
    records: list[Record] = []
    for name, *fields in data:
        if name == "kmsg":
            kmsg = unhexed(fields[0])
        elif name == "file":
            outputs.append((_inside(unhexed(fields[0])), unhexed(fields[1]), None))
        elif name == "link":
            outputs.append((_inside(unhexed(fields[0])), "", unhexed(fields[1])))
        elif name == "log":
            records.append((int(fields[0]), unhexed(fields[1])))
        else:
            return None
    return (kmsg, outputs, records) if kmsg is not None else None


def read_cached(root: str) -> tuple[str, list[Output], list[Record]] | None:
    """``(kmsg path, outputs, log records)`` when the cache under ``root`` exists, is whole
    and every part of its key matches the machine now; ``None`` otherwise (a miss)."""
    data = keyfile.load(os.path.join(root, CACHE), MAGIC, _invocation(root), REQUIRED)
    if data is None:
        return None
    try:
        return _output(data)
    except (ValueError, IndexError):
        return None


def _normalized(root: str) -> bool:
    """An absolute path spelt as Python's ``Path`` would spell it (as the full path's log
    lines do), so that the cached lines are exactly those the full path would log."""
    return root == "/" or (root.startswith("/") and not root.startswith("//")
                           and os.path.normpath(root) == root)


def replay_cached(argv: Sequence[str]) -> int | None:
    """The generator's fast path: on a hit, write the cached files into the normal output
    directory, log the cached lines and return the exit status; ``None``: a miss (or bad
    usage), the full generator must run."""
    parsed = parse_arguments(argv)
    if parsed is None:
        return None
    root, dirs = parsed
    if not _normalized(root):
        return None
    found = read_cached(root)
    if found is None:
        return None
    kmsg, outputs, records = found
    log = open_log(root, kmsg)
    for level, message in records:
        log.write(level, message)
    write_outputs(dirs[0], outputs, log)  # what it could not write, it logged
    return 0


def cache_is_current(root: str) -> bool:
    """The cache under ``root`` would be a hit now (checked as the generator checks it)."""
    return _normalized(root) and read_cached(root) is not None
