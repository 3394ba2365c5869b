"""The one reader of ``/proc/iomem``.

Three parts of pmemd read this file: the memory map of this boot (:mod:`pmemd.core.e820`),
the boot history's record of which ranges were pmem (:mod:`pmemd.fastpath.boot_history`)
and the converged stamp's check of where the kernel image lies
(:mod:`pmemd.fastpath.converged`). The last two run at every boot before anything heavy
is imported, so this module is plain string work with no imports at all; the typed
reading builds on it.

A line is ``START-END : NAME`` (inclusive end, hex), indented two spaces per level of
nesting. Read by anyone but root, every address is zero: that is "hidden", not a map.
"""

from __future__ import annotations

# The kernel's names for the parts of its own image (children of a System RAM range).
KERNEL_IMAGE = ("Kernel code", "Kernel rodata", "Kernel data", "Kernel bss")
# The name of an e820 type-12 range: what memmap=nn!ss makes. The kernel sets it up while
# parsing the command line, before any driver, so it witnesses the option reliably.
LEGACY_PMEM = "Persistent Memory (legacy)"

Resource = tuple[int, int, int, str]  # depth, start, end (exclusive), name


class IomemFormatError(ValueError):
    """A line that is not ``START-END : NAME``; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


_HEX = frozenset("0123456789abcdefABCDEF")


def _address(text: str) -> int:
    """An address as iomem prints it (``%0*llx``: 8 or 16 digits, never more than 64 bits);
    ``int()`` alone would also take a sign, ``_`` and non-ASCII digits."""
    if not 0 < len(text) <= 16 or not _HEX.issuperset(text):
        raise ValueError(text)
    return int(text, 16)


def _resource(line: str, number: int) -> Resource:
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    span, separator, name = stripped.partition(" : ")
    first, dash, last = span.partition("-")
    try:
        if not separator or not dash or indent % 2:
            raise ValueError
        start, end = _address(first), _address(last) + 1
    except ValueError:
        shown = line.strip()[:80].encode("unicode_escape").decode("ascii")
        raise IomemFormatError(f"not an iomem line: '{shown}'", number) from None
    return indent // 2, start, end, name


def parse_iomem(text: str) -> list[Resource] | None:
    """Every line as ``(depth, start, end, name)``, in file order; ``None`` when the
    addresses are hidden (the file was read by someone other than root)."""
    resources = [_resource(line, number)
                 for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if all(start == 0 and end == 1 for _, start, end, _ in resources):
        return None
    return resources


def top_level(resources: list[Resource], name: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every top-level range called ``name``."""
    return [(start, end) for depth, start, end, found in resources
            if depth == 0 and found == name]


def kernel_image(resources: list[Resource]) -> list[tuple[int, int]]:
    """``(start, end)`` of each part of the running kernel's image, sorted."""
    return sorted((start, end) for _, start, end, name in resources if name in KERNEL_IMAGE)
