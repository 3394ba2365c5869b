"""Fingerprints of what a decision read: file identities, contents and small sysfs trees,
as text that a fast path can check again with nothing but ``os``.

Shared by the converged stamp (:mod:`pmemd.bootloader.stamp`: a reconcile that changes
nothing) and the generator's cache (:mod:`pmemd.gencache`). Both run on every boot before
anything heavy is imported, so this module imports only ``os`` and ``sys``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

MISSING = "-"
# The pmemd package: its code decides every recorded outcome.
PACKAGE = os.path.dirname(os.path.abspath(__file__))


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


def content(path: str, limit: int = -1) -> str:
    """The bytes of ``path`` (at most ``limit``) in hex; ``-`` when it does not exist,
    ``!ERRNO`` when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).hex()
    except FileNotFoundError:
        return MISSING
    except OSError as err:
        return f"!{err.errno}"


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


def code_files(extra: Sequence[str] = ()) -> list[str]:
    """pmemd's code (every ``.py`` of the package and its bootloader package), and the
    modules in the directories ``extra`` likewise. The directories themselves are not
    fingerprinted: Python writing a ``__pycache__`` changes them without changing any code,
    and a module added to them matters only once a changed module imports it."""
    found: list[str] = []
    for directory in (PACKAGE, os.path.join(PACKAGE, "bootloader"), *extra):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        found.extend(os.path.join(directory, n) for n in names
                     if n.endswith((".py", ".so")))
    return found
