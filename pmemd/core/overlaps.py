"""(pure) Which of the ranges kept so far a new range overlaps, in O(log n) per range.

The config's regions are checked in file order, and a region is kept only when it overlaps
none kept before it, so the kept ranges are disjoint. A new range ``[s, e)`` can then only
overlap the kept range that starts last before ``s`` and those that start in ``[s, e)``.
The starts of all candidates are sorted once; a Fenwick tree over that order counts the
kept ones, so each of them is found by its rank among the kept. Checking n regions costs
O(n log n) plus the overlaps reported, where comparing every pair cost O(n²).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Generic, TypeVar

from pmemd.core.ranges import MemRange

T = TypeVar("T")


class KeptRanges(Generic[T]):
    """Disjoint ranges, each with an item, among the starts of ``candidates``."""

    def __init__(self, candidates: Iterable[MemRange]) -> None:
        self._starts = sorted({r.start for r in candidates})
        self._tree = [0] * (len(self._starts) + 1)  # Fenwick tree: kept starts per position
        self._kept: dict[int, tuple[MemRange, T]] = {}  # position -> range, item
        self._step = 1 << len(self._starts).bit_length()

    def overlapping(self, rng: MemRange) -> list[T]:
        """The items of the kept ranges that ``rng`` overlaps, by address."""
        low = bisect_left(self._starts, rng.start)
        high = bisect_left(self._starts, rng.end)
        before, through = self._count(low), self._count(high)
        found = []
        if before:  # the last one starting before rng may reach into it
            last, item = self._kept[self._find(before)]
            if last.end > rng.start:
                found.append(item)
        found += [self._kept[self._find(rank)][1] for rank in range(before + 1, through + 1)]
        return found

    def keep(self, rng: MemRange, item: T) -> None:
        """Keep ``rng`` (one of the candidates, overlapping no kept range)."""
        position = bisect_left(self._starts, rng.start)
        if self._starts[position : position + 1] != [rng.start] or position in self._kept:
            raise ValueError(f"{rng} is not a free candidate")
        self._kept[position] = (rng, item)
        index = position + 1
        while index < len(self._tree):
            self._tree[index] += 1
            index += index & -index

    def _count(self, positions: int) -> int:
        """How many kept ranges start at the first ``positions`` positions."""
        total = 0
        while positions:
            total += self._tree[positions]
            positions -= positions & -positions
        return total

    def _find(self, rank: int) -> int:
        """The position of the ``rank``-th kept range (1-based), by address."""
        position, step = 0, self._step
        while step:
            nxt = position + step
            if nxt < len(self._tree) and self._tree[nxt] < rank:
                position = nxt
                rank -= self._tree[nxt]
            step >>= 1
        return position
