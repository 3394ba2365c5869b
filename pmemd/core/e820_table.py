"""(pure) A firmware map made what the kernel makes of it: sorted, without overlaps, with
adjacent ranges of one type merged — and a list of what was odd about it.

The kernel never trusts the table the firmware hands it: ``e820__update_table`` in
``arch/x86/kernel/e820.c`` sorts its change points, gives every stretch of memory that
several entries claim the *highest numbered* type among them (usable is 1, so anything
else claimed over usable RAM wins), merges neighbours of the same type except type 12
(legacy pmem) and soft-reserved (each stays its own range), and drops empty entries. The
map it prints and exports in sysfs is that result. A pasted or hand-edited map that is not
(overlaps, duplicates, disorder) is read the same way here, and each oddity is said, so that
no region is ever placed in memory the kernel would not call usable."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from pmemd.core.e820 import E820Entry, RangeKind, e820_type
from pmemd.core.ranges import MemRange

# Types the kernel never merges with a neighbour (e820_nomerge / e820_type_mergeable).
_KEPT_APART = (RangeKind.PERSISTENT_LEGACY, RangeKind.SOFT_RESERVED)
MAX_LISTED = 8  # oddities listed one by one; the rest are counted


@dataclass(frozen=True)
class E820Table:
    entries: tuple[E820Entry, ...]
    oddities: tuple[str, ...] = ()


def _describe(entry: E820Entry) -> str:
    return f"{entry.range} {entry.label or entry.kind.value}"


def _duplicates(entries: Sequence[E820Entry]) -> tuple[list[E820Entry], list[str]]:
    seen: dict[E820Entry, int] = {}
    for entry in entries:
        seen[entry] = seen.get(entry, 0) + 1
    odd = [f"{_describe(e)} is listed {n} times" for e, n in seen.items() if n > 1]
    return list(seen), odd


@dataclass
class _Piece:
    range: MemRange
    winner: E820Entry
    claimed_by: tuple[E820Entry, ...]


def _pieces(entries: Sequence[E820Entry]) -> list[_Piece]:
    """Each stretch between two change points, with the entry whose type wins there."""
    points: dict[int, list[tuple[bool, int]]] = {}
    for index, entry in enumerate(entries):
        points.setdefault(entry.range.start, []).append((True, index))
        points.setdefault(entry.range.end, []).append((False, index))
    active: set[int] = set()
    heap: list[tuple[int, int]] = []  # (-type, index): the highest type, first listed, on top
    pieces: list[_Piece] = []
    addresses = sorted(points)
    for position, here in enumerate(addresses):
        there = addresses[position + 1] if position + 1 < len(addresses) else None
        for starts, index in points[here]:
            if starts:
                active.add(index)
                heapq.heappush(heap, (-e820_type(entries[index]), index))
            else:
                active.discard(index)
        while heap and heap[0][1] not in active:
            heapq.heappop(heap)
        if heap and there is not None:
            claimed = tuple(entries[i] for i in sorted(active)) if len(active) > 1 else ()
            pieces.append(_Piece(MemRange(here, there), entries[heap[0][1]], claimed))
    return pieces


def _overlap_text(piece: _Piece) -> str:
    names = " and ".join(dict.fromkeys(e.label or e.kind.value for e in piece.claimed_by))
    return (f"{piece.range}: claimed by {len(piece.claimed_by)} entries ({names}); "
            f"read as {piece.winner.label or piece.winner.kind.value}, the higher e820 type, "
            "as the kernel reads it")


def _joined(pieces: Sequence[_Piece]) -> tuple[list[E820Entry], list[str]]:
    """Neighbouring pieces of one type as one entry (but type 12 and soft reserved)."""
    out: list[E820Entry] = []
    odd: list[str] = []
    last: _Piece | None = None
    for piece in pieces:
        if piece.claimed_by:
            odd.append(_overlap_text(piece))
        winner = piece.winner
        if (last is not None and out and last.range.end == piece.range.start
                and e820_type(last.winner) == e820_type(winner)
                and winner.kind not in _KEPT_APART):
            previous = out[-1]
            if last.winner is not winner and not piece.claimed_by and not last.claimed_by:
                odd.append(f"{_describe(last.winner)} and {_describe(winner)} are adjacent; "
                           "read as one range, as the kernel merges them")
            out[-1] = E820Entry(MemRange(previous.range.start, piece.range.end),
                                previous.kind, previous.label)
        else:
            out.append(E820Entry(piece.range, winner.kind, winner.label))
        last = piece
    return out, odd


def _out_of_order(entries: Sequence[E820Entry]) -> list[str]:
    for before, after in pairwise(entries):
        if after.range.start < before.range.start:
            return [f"the entries are not in address order ({_describe(after)} comes after "
                    f"{_describe(before)}); read sorted, as the kernel sorts them"]
    return []


def normalise(entries: Sequence[E820Entry]) -> E820Table:
    """``entries`` as the kernel's ``e820__update_table`` leaves them, and the oddities
    (the first :data:`MAX_LISTED`, then how many more)."""
    odd = _out_of_order(entries)
    unique, repeated = _duplicates(entries)
    odd += repeated
    kept, merged = _joined(_pieces([e for e in unique if e.range.size > 0]))
    odd += merged
    return E820Table(tuple(kept), summarise(odd))


def summarise(oddities: Sequence[str], limit: int = MAX_LISTED) -> tuple[str, ...]:
    """At most ``limit`` oddities, then how many more there were."""
    if len(oddities) <= limit:
        return tuple(oddities)
    return (*oddities[:limit], f"and {len(oddities) - limit} more")
