"""Time-sorted entries for the join's indexes (PHP-FPM evidence, waiting failures), and the one nearest-in-time
lookup both use.

An entry is a tuple ``(event time, tie-break, ...)``: sorted by time, then by its tie-break (a log position, an
item id), whatever rides after it never compared. Pure data structures, no clock.
"""

from __future__ import annotations

import bisect
from typing import Any, Final, TypeAlias

from sortedcontainers import SortedList

GROW_AT: Final = 512  # entries past which a SmallSorted becomes a SortedList (`grown`)


class SmallSorted(list[Any]):
    """A sorted list with ``SortedList``'s add/remove/bisect_left, for the many lists that hold a few entries
    (one per URI or per request key): ~20x cheaper to create than a SortedList. ``grown`` swaps it for a
    SortedList past ``GROW_AT`` entries, where a plain list's insert and delete (a memmove of the tail)
    would grow with the window."""

    __slots__ = ()

    def add(self, entry: Any) -> None:
        if not self or entry > self[-1]:
            self.append(entry)  # in order: the common case
        else:
            bisect.insort(self, entry)

    def remove(self, entry: Any) -> None:
        i = bisect.bisect_left(self, entry)
        if i == len(self) or self[i] != entry:
            raise ValueError(entry)
        del self[i]

    def bisect_left(self, entry: Any) -> int:
        return bisect.bisect_left(self, entry)


SortedEntries: TypeAlias = "SmallSorted | SortedList"


def grown(entries: SortedEntries) -> SortedEntries:
    """``entries``, as a SortedList once it holds too many for a plain list."""
    if len(entries) > GROW_AT and type(entries) is SmallSorted:
        return SortedList(entries)
    return entries


def nearest_entry(entries: SortedEntries, t_ms: int, window_ms: int) -> Any:
    """The entry nearest to ``t_ms`` within ``window_ms`` (None if none is): among equally near ones the one with
    the smaller tie-break. Two bisections and at most two entries compared, however many there are."""
    i = entries.bisect_left((t_ms,))
    best: Any = None
    best_dt = window_ms + 1
    if i < len(entries):
        best = entries[i]  # the smallest tie-break of the first time at or after t_ms
        best_dt = best[0] - t_ms
    if i > 0:
        ts_ms = entries[i - 1][0]
        left = entries[entries.bisect_left((ts_ms,))]  # the smallest tie-break of the last time before t_ms
        dt = t_ms - ts_ms
        if best is None or dt < best_dt or (dt == best_dt and left[1] < best[1]):
            best, best_dt = left, dt
    return best if best is not None and best_dt <= window_ms else None
