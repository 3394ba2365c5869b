"""Fingerprints of what a decision read: file identities, contents and small sysfs trees,
as text that a fast path can check again with nothing but ``os``.

The key lines of :mod:`pmemd.fastpath.keyfile` (the converged stamp, the generator's
cache) are made of these. Both run on every boot before anything heavy is imported, so
this module imports only ``os``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

MISSING = "-"
# The pmemd package (this module is pmemd/fastpath/fingerprint.py): its code decides every
# recorded outcome.
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CODE_SUFFIXES = (".py", ".so")


def hexed(text: str) -> str:
    """``text`` as one word of hex digits (any bytes, surrogate-escaped ones too)."""
    return text.encode("utf-8", "surrogateescape").hex()


def unhexed(word: str) -> str:
    return bytes.fromhex(word).decode("utf-8", "surrogateescape")


def identity(path: str) -> str:
    """Which file is at ``path``: inode, size, modification and change times."""
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


NOT_REGULAR = "!special"  # a FIFO, a device, a directory: never read, never a key's match
CONTENT_LIMIT = 16 << 20  # more than any file a key holds (a config is at most 1 MiB)


def content(path: str, limit: int = -1) -> str:
    """The bytes of ``path`` (at most ``limit``) in hex; ``-`` when it does not exist,
    ``!ERRNO`` when it cannot be read, ``!special`` when it is not a regular file (opened
    without blocking, so a FIFO at /etc/pmemd.yaml cannot hang the boot)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return MISSING
    except OSError as err:
        return f"!{err.errno}"
    try:
        if (os.fstat(fd).st_mode & 0o170000) != 0o100000:  # not S_IFREG
            return NOT_REGULAR
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(CONTENT_LIMIT if limit < 0 else limit).hex()
    except OSError as err:
        return f"!{err.errno}"
    finally:
        os.close(fd)


def tree(path: str) -> str:
    """The files one or two levels below a sysfs directory, names and contents."""
    try:
        parts = []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            children = sorted(os.listdir(full)) if os.path.isdir(full) else [""]
            for child in children:
                leaf = os.path.join(full, child) if child else full
                parts.append(f"{name}/{child}\0{content(leaf)}")
        return hexed("\0".join(parts))
    except OSError:
        return MISSING


def _modules(directory: str, *, below: bool) -> list[str]:
    """The modules in ``directory`` and, with ``below``, in every package under it."""
    found: list[str] = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if below and d != "__pycache__")
        found.extend(os.path.join(top, name) for name in sorted(files)
                     if name.endswith(_CODE_SUFFIXES))
    return found


def code_files(extra: Sequence[str] = ()) -> list[str]:
    """pmemd's code — every module of the package, in whichever of its rooms it lives —
    and the modules in the directories ``extra``. Directories themselves are not
    fingerprinted: Python writing a ``__pycache__`` changes them without changing any
    code, and a module added to them matters only once a changed module imports it."""
    found = _modules(PACKAGE, below=True)
    for directory in extra:
        found.extend(_modules(directory, below=False))
    return found


# The code as this process loaded it, once remember_code() ran. A writer records these
# identities, not the files' at writing time, so that code replaced since (an upgrade under
# a running service) is a miss at the next boot rather than the old code's output under
# the new code's key. A reader at boot needs no walk: it checks the files the key lists.
CODE_AT_IMPORT: dict[str, str] = {}


def remember_code() -> None:
    """Record the identity of every module of pmemd as it is now. Each writer of
    fingerprints calls this when it is imported (with the code it will run)."""
    if not CODE_AT_IMPORT:
        CODE_AT_IMPORT.update((path, identity(path)) for path in code_files())


def code_identity(path: str) -> str:
    """``path``'s identity as this process loaded it (as it is now, if it did not)."""
    return CODE_AT_IMPORT.get(path) or identity(path)
