"""(pure) Physical address ranges and the arithmetic on them that placement needs.

Every other part of the core speaks of memory in :class:`MemRange`: the firmware map's
entries, the ranges ``memmap=`` options reserve, a region's place, a device's namespace."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pmemd.core.sizes import format_bytes

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True, order=True)
class MemRange:
    """A physical address range; ``end`` is exclusive."""

    start: int
    end: int

    @classmethod
    def sized(cls, start: int, size: int) -> MemRange:
        return cls(start, start + size)

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> int:
        return self.end - 1

    def overlaps(self, other: MemRange) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: MemRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    def __str__(self) -> str:
        """Inclusive, as the kernel prints ranges: ``0x100000000-0x3ffffffff``."""
        return f"0x{self.start:x}-0x{self.last:x}"

    def describe(self) -> str:
        return f"{self} ({format_bytes(self.size)})"


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def subtract(ranges: Iterable[MemRange], taken: Iterable[MemRange]) -> tuple[MemRange, ...]:
    """``ranges`` with every part that lies in ``taken`` removed."""
    pieces = sorted(ranges)
    for cut in sorted(taken):
        kept: list[MemRange] = []
        for piece in pieces:
            if not piece.overlaps(cut):
                kept.append(piece)
                continue
            if piece.start < cut.start:
                kept.append(MemRange(piece.start, cut.start))
            if cut.end < piece.end:
                kept.append(MemRange(cut.end, piece.end))
        pieces = kept
    return tuple(pieces)


def aligned_parts(ranges: Iterable[MemRange], alignment: int) -> tuple[MemRange, ...]:
    """The aligned part of each range, largest first (ties: higher address first)."""
    aligned = []
    for rng in ranges:
        start, end = align_up(rng.start, alignment), align_down(rng.end, alignment)
        if end > start:
            aligned.append(MemRange(start, end))
    return tuple(sorted(aligned, key=lambda r: (-r.size, -r.start)))
