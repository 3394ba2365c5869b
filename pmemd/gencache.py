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
key. The generator (see :func:`replay_cached`) reads it, compares every part of the key
byte for byte and, on a hit, creates exactly the cached files (exclusively, as the full
path does) and logs the cached lines. Any difference, a damaged or unreadable file (``/var``
may not be mounted yet at generator time, and the root file system may then hold a stale
leftover under the mount point: the exact key makes that harmless) or anything unexpected
is a miss: the full generator runs, unchanged. The generator never writes this file.

This module must import nothing heavy: ``os``, ``sys`` and ``zlib`` (built in) only;
:func:`refresh_generator_cache` imports the full code when it is called.
"""

from __future__ import annotations

import os
import sys
import zlib

from pmemd import __version__
from pmemd.fingerprint import (
    MISSING,
    PACKAGE,
    code_files,
    content,
    hexed,
    identity,
    tree,
    unhexed,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pmemd.machine import Machine

MAGIC = "pmemd-generator-cache 1"
# Under the root; the same file as pmemd.machine.Machine.generator_cache (tested).
CACHE = "var/lib/pmemd/generator-cache"
GENERATOR = "pmemd-generator"
USAGE = f"usage: {GENERATOR} [--root DIR] NORMAL_DIR [EARLY_DIR LATE_DIR]\n"
CONFIG_READ_LIMIT = 2 << 20  # enough to tell "too large" without reading it all
_KMSG_LINE_MAX = 900  # the kernel cuts a /dev/kmsg record at about 1 KiB
# The code as this process loaded it: a cache records these identities, not the files'
# at writing time, so that code replaced since (an upgrade under a running service) is a
# miss at the next boot rather than output of the old code under the new code's key.
_CODE_AT_IMPORT = {path: identity(path) for path in code_files()}

Output = tuple[str, str, str | None]  # path under the output directory, text, link target


class Log:
    """Messages to the kernel log (a generator runs before the journal, its stderr goes to
    /dev/null) or, under ``--root`` or on a terminal, to stderr; every message is also kept
    in ``records`` (what the cache replays)."""

    def __init__(self, kmsg_fd: int | None = None, *, echo: bool = True) -> None:
        self.kmsg_fd = kmsg_fd
        self.echo = echo
        self.records: list[tuple[int, str]] = []

    @property
    def count(self) -> int:
        return len(self.records)

    def warning(self, message: str) -> None:
        self.write(4, message)

    def error(self, message: str) -> None:
        self.write(3, message)

    def write(self, level: int, message: str) -> None:
        self.records.append((level, message))
        if not self.echo:
            return
        if self.kmsg_fd is not None:
            record = f"<{level}>{GENERATOR}[{os.getpid()}]: {message}"[:_KMSG_LINE_MAX]
            try:
                os.write(self.kmsg_fd, record.encode("utf-8", "replace") + b"\n")
                return
            except OSError:
                pass
        sys.stderr.write(f"{GENERATOR}: {message}\n")


def open_log(root: str, kmsg: str) -> Log:
    """The kernel log ``kmsg`` on the real root, else (or on a terminal) stderr."""
    if root != "/" or sys.stderr.isatty():
        return Log()
    try:
        return Log(os.open(kmsg, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return Log()


def parse_arguments(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(root, output directories)`` of ``[--root DIR] NORMAL [EARLY LATE]``, else None."""
    root, positional = "/", []
    items = iter(argv)
    for arg in items:
        if arg == "--root":
            root = next(items, "")
            if not root:
                return None
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if len(positional) not in (1, 3):
        return None
    return root, positional


def write_outputs(directory: str, outputs: Sequence[Output], log: Log) -> bool:
    """Create every file exclusively (a duplicate is a bug that must show); True if all."""
    ok = True
    made: set[str] = set()
    for path, text, link in outputs:
        target = os.path.join(directory, path)
        try:
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            if link is not None:
                os.symlink(link, target)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            log.error(f"{target}: already exists (a duplicate unit?), ignoring")
            ok = False
        except OSError as err:
            log.error(f"{target}: {err.strerror}, ignoring")
            ok = False
    return ok


def in_initrd(initrd_release: str) -> bool:
    """systemd's own test: ``$SYSTEMD_IN_INITRD`` or ``/etc/initrd-release`` (the path is
    given: only pmemd.machine names system paths)."""
    return os.environ.get("SYSTEMD_IN_INITRD") == "1" or os.path.exists(initrd_release)


# --- the cache file -------------------------------------------------------------------------


def render_cache(key: Sequence[str], kmsg: str, outputs: Sequence[Output],
                 records: Sequence[tuple[int, str]]) -> str:
    """(pure) The cache file: the key lines, the output, and a checksum of all of it."""
    lines = [MAGIC, *key, f"kmsg {hexed(kmsg)}"]
    for path, text, link in outputs:
        lines.append(f"link {hexed(path)} {hexed(link)}" if link is not None
                     else f"file {hexed(path)} {hexed(text)}")
    lines += [f"log {level} {hexed(message)}" for level, message in records]
    body = "\n".join(lines) + "\n"
    return f"{body}crc {zlib.crc32(body.encode('ascii')):08x}\n"


def _body(text: str) -> list[str] | None:
    """The lines of an undamaged cache file (checksum right, magic first), else None."""
    body, _, trailer = text[:-1].rpartition("\n")
    if not text.endswith("\n") or not trailer.startswith("crc "):
        return None
    body += "\n"
    if f"{zlib.crc32(body.encode('ascii')):08x}" != trailer[4:]:
        return None
    lines = body.splitlines()
    return lines if lines and lines[0] == MAGIC else None


def _check(kind: str, fields: list[str], root: str) -> bool:
    """Whether one key line still holds."""
    if kind == "python":
        return fields == [str(sys.hexversion)]
    if kind == "version":
        return fields == [hexed(__version__)]
    if kind == "root":
        return fields == [hexed(root)]
    if kind == "package":  # this very installation of pmemd wrote it
        return fields == [hexed(PACKAGE)]
    path = unhexed(fields[0])
    if kind == "stat":
        return (_CODE_AT_IMPORT.get(path) or identity(path)) == fields[1]
    if kind == "initrd":
        return not in_initrd(path)
    if kind == "config":
        return content(path, CONFIG_READ_LIMIT) == fields[1]
    if kind == "firmware":
        return tree(path) == fields[1]
    return False


_OUTPUT_KINDS = ("kmsg", "file", "link", "log")


def _inside(path: str) -> str:
    """``path`` when it stays inside the output directory (a generator writes nowhere
    else, whatever a cache says)."""
    if not path or path.startswith("/") or ".." in path.split("/") or "\0" in path:
        raise ValueError(f"not a path inside the output directory: {path!r}")
    return path


def read_cached(root: str) -> tuple[str, list[Output], list[tuple[int, str]]] | None:
    """``(kmsg path, outputs, log records)`` when the cache under ``root`` exists, is whole
    and every part of its key matches the machine now; ``None`` otherwise (a miss)."""
    try:
        with open(os.path.join(root, CACHE), encoding="ascii") as handle:
            lines = _body(handle.read())
        if lines is None:
            return None
        kmsg = None
        outputs: list[Output] = []
        records: list[tuple[int, str]] = []
        keyed = set()
        for line in lines[1:]:
            kind, *fields = line.split(" ")
            if kind == "kmsg":
                kmsg = unhexed(fields[0])
            elif kind == "file":
                outputs.append((_inside(unhexed(fields[0])), unhexed(fields[1]), None))
            elif kind == "link":
                outputs.append((_inside(unhexed(fields[0])), "", unhexed(fields[1])))
            elif kind == "log":
                records.append((int(fields[0]), unhexed(fields[1])))
            elif not _check(kind, fields, root):
                return None
            else:
                keyed.add(kind)
        # A cache without its essential key parts is no cache (never a guess).
        if kmsg is None or not {"python", "version", "package", "root", "initrd",
                                "config"} <= keyed:
            return None
        return kmsg, outputs, records
    except (OSError, ValueError, IndexError):  # unreadable, not ASCII, malformed
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
    return 0 if write_outputs(dirs[0], outputs, log) else 1


def cache_is_current(root: str) -> bool:
    """The cache under ``root`` would be a hit now (checked as the generator checks it)."""
    return _normalized(root) and read_cached(root) is not None


# --- writing it (full code) -----------------------------------------------------------------


def _yaml_dirs() -> tuple[str, ...]:
    """PyYAML's package (and its C extension's directory), when the config parser has
    loaded it."""
    found = []
    for name in ("yaml", "_yaml"):
        module = sys.modules.get(name)
        where = getattr(module, "__file__", None)
        if where:
            found.append(os.path.dirname(os.path.abspath(where)))
    return tuple(dict.fromkeys(found))


def render_generator_cache(machine: Machine) -> str | None:
    """The cache for ``machine`` as it is now; ``None`` when its output cannot be cached
    (the config cannot be read, the generator fails unexpectedly)."""
    from pmemd.generator import generate_from

    root = str(machine.root)
    try:
        with machine.config.open("rb") as handle:
            data: bytes | None = handle.read(CONFIG_READ_LIMIT)
    except FileNotFoundError:
        data = None
    except OSError:
        return None
    log = Log(echo=False)
    used: set[str] = set()
    try:
        files = generate_from(machine, data, log, used)
    except Exception:  # the full generator logs it; nothing worth replaying
        return None
    key = [f"python {sys.hexversion}", f"version {hexed(__version__)}",
           f"package {hexed(PACKAGE)}", f"root {hexed(root)}",
           f"initrd {hexed(str(machine.initrd_release))}",
           f"config {hexed(str(machine.config))} {MISSING if data is None else data.hex()}"]
    key += [f"stat {hexed(p)} {_CODE_AT_IMPORT.get(p) or identity(p)}"
            for p in code_files(_yaml_dirs())]
    if "firmware" in used:
        firmware = str(machine.firmware_memmap)
        key.append(f"firmware {hexed(firmware)} {tree(firmware)}")
    outputs = [(f.path, f.text, f.link) for f in files]
    return render_cache(key, str(machine.kmsg), outputs, log.records)


def refresh_generator_cache(machine: Machine) -> str:
    """Write (or keep, or remove) the cache for ``machine``; never raises for I/O. Says
    what it did: ``written``, ``current``, ``removed`` (the output cannot be cached) or
    ``failed: why``."""
    from pmemd.atomic import remove_durably, write_atomic

    path = machine.generator_cache
    try:
        text = render_generator_cache(machine)
        if text is None:
            existed = path.exists()
            remove_durably(path)
            return "removed" if existed else "current"
        try:
            if path.read_text(encoding="ascii") == text:
                return "current"
        except (OSError, ValueError):
            pass
        write_atomic(path, text, mode=0o644)
        return "written"
    except OSError as err:
        return f"failed: {err.filename or path}: {err.strerror}"
