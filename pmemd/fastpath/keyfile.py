"""The one format of pmemd's boot-time caches: what a decision read (its *key*) and what it
produced (its *data*), checked again at the next boot with nothing but ``os``.

Two files use it: the converged stamp (:mod:`pmemd.fastpath.converged`: a ``pmemd
reconcile`` that found nothing to do) and the generator's cache
(:mod:`pmemd.fastpath.generator_cache`: pmemd-generator's output). Both are written by a
process that ran the full code, and read on the boot's critical path, where importing that
code would cost several times an interpreter's start-up. A file is text::

    MAGIC
    key KIND FIELD...
    data NAME FIELD...
    crc CRC32

Paths and free text are hex words (:func:`~pmemd.fastpath.fingerprint.hexed`), so a line
splits at spaces. A key line *holds* when what it recorded is still so (:func:`holds`);
the data is used only when every key line holds, every kind a reader requires is present,
and the checksum matches. Anything else — a damaged, truncated or unreadable file, a kind
this code does not know — is a miss, and the full code runs: a miss costs time, never a
wrong answer.
"""

from __future__ import annotations

import os
import sys
import zlib

from pmemd.fastpath import iomem
from pmemd.fastpath.fingerprint import code_identity, content, identity, tree, unhexed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

Line = tuple[str, ...]  # a kind (or name) and its fields

# Kinds whose fields the reader passes in (what this invocation is), not facts of a file.
INVOCATION_KINDS = ("python", "version", "package", "root", "invocation")


def python_line() -> Line:
    """The interpreter: another one may load other modules (PyYAML's C extension …)."""
    return ("python", str(sys.hexversion))


def render(magic: str, key: Iterable[Line], data: Iterable[Line]) -> str:
    """The file: the magic line, the key and data lines, and a checksum of all of it."""
    lines = [magic, *(" ".join(("key", *line)) for line in key),
             *(" ".join(("data", *line)) for line in data)]
    body = "\n".join(lines) + "\n"
    return f"{body}crc {zlib.crc32(body.encode('ascii')):08x}\n"


def parse(text: str, magic: str) -> tuple[list[Line], list[Line]] | None:
    """``(key lines, data lines)`` of an undamaged file, else ``None``."""
    body, _, trailer = text[:-1].rpartition("\n")
    if not text.endswith("\n") or not trailer.startswith("crc "):
        return None
    body += "\n"
    if f"{zlib.crc32(body.encode('ascii')):08x}" != trailer[4:]:
        return None
    lines = body.splitlines()
    if not lines or lines[0] != magic:
        return None
    key: list[Line] = []
    data: list[Line] = []
    for line in lines[1:]:
        part, *fields = line.split(" ")
        if part == "key" and fields:
            key.append(tuple(fields))
        elif part == "data" and fields:
            data.append(tuple(fields))
        else:
            return None
    return key, data


def in_initrd(initrd_release: str) -> bool:
    """systemd's own test: ``$SYSTEMD_IN_INITRD`` or ``/etc/initrd-release`` (the path is
    given: only :mod:`pmemd.machine.root` names system paths)."""
    return os.environ.get("SYSTEMD_IN_INITRD") == "1" or os.path.exists(initrd_release)


def kernel_image_clear(iomem_path: str, regions: str) -> bool:
    """No part of the running kernel's image (``/proc/iomem``) overlaps one of ``regions``
    (``start-end,…`` in decimal, end exclusive)."""
    ranges = [tuple(int(n) for n in r.split("-")) for r in regions.split(",") if r]
    try:
        with open(iomem_path, encoding="ascii", errors="replace") as handle:
            resources = iomem.parse_iomem(handle.read())
    except (OSError, iomem.IomemFormatError):
        return not ranges
    image = iomem.kernel_image(resources) if resources is not None else []
    return not any(start < r_end and r_start < end
                   for start, end in image for r_start, r_end in ranges)


def holds(line: Line, expected: Mapping[str, Sequence[str]]) -> bool:
    """Whether one key line still holds; ``expected`` gives the fields of the
    :data:`INVOCATION_KINDS` this reader is invoked with."""
    kind, *fields = line
    if kind in INVOCATION_KINDS:
        return kind in expected and fields == list(expected[kind])
    path = unhexed(fields[0])
    if kind == "code":
        return code_identity(path) == fields[1]
    if kind == "stat":
        return identity(path) == fields[1]
    if kind == "content":
        return content(path) == fields[1]
    if kind == "head":  # the first LIMIT bytes (all a reader of the file reads)
        return content(path, int(fields[1])) == fields[2]
    if kind == "tree":
        return tree(path) == fields[1]
    if kind == "exists":
        return str(int(os.path.exists(path))) == fields[1]
    if kind == "not-initrd":
        return not in_initrd(path)
    if kind == "kernel-image":
        return kernel_image_clear(path, fields[1])
    return False


def load(path: str, magic: str, expected: Mapping[str, Sequence[str]],
         required: Iterable[str]) -> list[Line] | None:
    """The data lines of the file at ``path`` when it is whole, has every ``required``
    key kind and every key line holds; ``None`` (a miss) otherwise."""
    try:
        with open(path, encoding="ascii") as handle:
            found = parse(handle.read(), magic)
        if found is None:
            return None
        key, data = found
        if not set(required) <= {line[0] for line in key}:
            return None
        if not all(holds(line, expected) for line in key):
            return None
    except (OSError, ValueError, IndexError):  # unreadable, not ASCII, malformed
        return None
    return data
