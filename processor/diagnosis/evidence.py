"""One host's PHP-FPM evidence, indexed so that each failure looks at a bounded set of candidates.

In an outage nearly every request fails and nearly every failure leaves PHP-FPM evidence: a window can hold
tens of thousands of ``execution timed out`` and ``exited on signal`` lines. Scanning them per failure made the
diagnosis quadratic (issue #23). Here every candidate sits in a few time-sorted lists, keyed by what the
ranking of ``causes.best_evidence`` looks at (pool, kind, URI, query, path class), so a failure asks each list
for its nearest entries: O(log n) per list and a constant number of lists, whatever the window holds.

Which lines are candidates, and how one is chosen, is docs/causes.md's "Which PHP-FPM line explains a
reset"; ``causes.best_evidence`` holds the rule, this module only finds its answer fast. Pure state: events
in, no clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Final

from processor.core.events import Event
from processor.core.sorted_entries import GROW_AT, SmallSorted, SortedEntries, grown, nearest_entry

TIMED_OUT: Final = "timed_out"
MAX_CHILDREN: Final = "max_children"
_EXITS: Final = frozenset({"exited_signal", "exited_code"})
SIGTERM: Final = 15
# how long after `execution timed out` its child's SIGTERM exit may be logged (reaping is immediate; a
# window's worth of slack for a busy master)
TIMEOUT_EXIT_MS: Final = 10_000

Position = tuple[str, int, int]


def log_position(event: Event) -> Position:
    """Where a line sits in its log: (file or topic, partition, line or offset). Lines of one second are told
    apart by it: NGINX and PHP-FPM write their lines about one second's requests in the order those happened,
    and it is the same in every run, whatever order the streams arrive in."""
    source = event.source
    return source.name, -1 if source.partition is None else source.partition, source.offset


# A list entry: (event time, log position, arrival) sorts by time, then the ranking's last tie-break (the
# earlier line of its log wins); the event rides along and is never compared.
_Entry = tuple[int, Position, int, Event]
_Key = tuple[object, ...]


class Candidate:
    """One timeout or crash line and the lists it sits in."""

    __slots__ = ("event", "entry", "at", "keys", "timeout", "live", "follows", "enders")

    def __init__(self, event: Event, seq: int, timeout: bool) -> None:
        self.event = event
        self.entry: _Entry = (event.ts_ms, log_position(event), seq, event)
        self.at = (event.ts_ms, seq)  # its place in its child's lists: time, then arrival
        self.keys: list[_Key] = []
        self.timeout = timeout
        self.live = True  # not yet explaining a failure
        self.follows: Candidate | None = None  # a SIGTERM exit: the timeout it ends
        self.enders: list[Candidate] = []  # a timeout: the SIGTERM exits that end it (one, unless lines repeat)

    def ends(self, timeout: Candidate) -> None:
        """This exit ends ``timeout`` (instead of the timeout it was taken to end)."""
        if self.follows is not None:
            self.follows.enders.remove(self)
        self.follows = timeout
        timeout.enders.append(self)
        timeout.enders.sort(key=lambda c: c.at)


def uri_keys(uri: object) -> list[tuple[object, ...]]:
    """The lists an FPM line with request URI ``uri`` is found in (pool and kind are added by the caller)."""
    if not isinstance(uri, str):
        return [("none",)]
    path, _, query = uri.partition("?")
    has = "q" if query else "nq"
    keys: list[tuple[object, ...]] = [("uri", uri), (has, "all")]
    keys.append((has, "php", path) if path.endswith(".php") else (has, "other"))
    if query:
        keys.append(("query", query))
    return keys


def search_keys(uri: str | None) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """For a failed request's URI: the lists whose lines score ≥ 2 (same query), and those scoring 1 or 1.5.

    Every line in these lists has a non-zero ``causes.uri_score``, and every line with a non-zero score is in
    one of them: a line of another query, or another ``.php`` script, is never looked at.
    """
    if uri is None:
        return [], [("q", "all"), ("nq", "all"), ("none",)]
    path, _, query = uri.partition("?")
    strong: list[tuple[object, ...]] = [("uri", uri), ("query", query)] if query else []
    weak: list[tuple[object, ...]] = [] if query else [("uri", uri)]
    for has in ("nq",) if query else ("nq", "q"):
        if path.endswith(".php"):
            weak += [(has, "php", path), (has, "other")]
        else:
            weak.append((has, "all"))
    weak.append(("none",))
    return strong, weak


class _Child:
    """One PHP-FPM child (pool, pid) as its lines tell: timeouts and exits, each by (time, arrival)."""

    __slots__ = ("timeouts", "exits")

    def __init__(self) -> None:
        self.timeouts: SortedEntries = SmallSorted()  # (ts, seq, candidate)
        self.exits: SortedEntries = SmallSorted()

    def add_timeout(self, c: Candidate) -> None:
        self.timeouts.add((*c.at, c))
        self.timeouts = grown(self.timeouts)

    def add_exit(self, c: Candidate) -> None:
        self.exits.add((*c.at, c))
        self.exits = grown(self.exits)

    def remove(self, c: Candidate) -> bool:
        """Forget ``c``; whether the child has nothing left."""
        (self.timeouts if c.timeout else self.exits).remove((*c.at, c))
        return not self.timeouts and not self.exits


class EvidenceIndex:
    """The PHP-FPM evidence of one host: everything held (for offsets and pruning) and the candidates indexed.

    ``examined`` counts the entries compared while answering queries: the operation count the complexity
    test reads.
    """

    def __init__(self) -> None:
        # every evidence line, oldest first: timeouts and exits (held while a window may use them) apart from the
        # `max_children` warnings (held for the saturation lookback, much longer)
        self._held: list[tuple[int, int, Event, Candidate | None]] = []
        self._held_saturation: list[tuple[int, int, Event, Candidate | None]] = []
        self._lists: dict[_Key, SortedEntries] = {}
        self._children: dict[tuple[object, object], _Child] = {}  # (pool, pid) → its lines
        self._candidates: dict[int, Candidate] = {}  # id(event) → its candidate
        self._saturation: SortedEntries = SmallSorted()  # (ts, seq, event) of `max_children` warnings
        self._pools: dict[object, int] = {}
        self._seq = 0
        self.examined = 0

    def __len__(self) -> int:
        return len(self._held) + len(self._held_saturation)

    def __iter__(self) -> Iterator[Event]:
        return (held[2] for held in (*self._held, *self._held_saturation))

    # -- holding -------------------------------------------------------------------------------
    def add(self, event: Event) -> None:
        """Hold one evidence line (``timed_out``, ``exited_signal``, ``exited_code``, ``max_children``)."""
        self._seq += 1
        f = event.fields
        kind = f.get("kind")
        candidate: Candidate | None = None
        if kind == MAX_CHILDREN:
            self._saturation.add((event.ts_ms, self._seq, event))
            self._saturation = grown(self._saturation)
            heapq.heappush(self._held_saturation, (event.ts_ms, self._seq, event, None))
            return
        if kind == TIMED_OUT or (kind == "exited_signal" or (kind in _EXITS and f.get("exit_code") not in (0, None))):
            candidate = Candidate(event, self._seq, kind == TIMED_OUT)
            self._index(candidate)
        heapq.heappush(self._held, (event.ts_ms, self._seq, event, candidate))

    def _index(self, c: Candidate) -> None:
        f = c.event.fields
        pool = f.get("pool")
        self._candidates[id(c.event)] = c
        child_key = (pool, f.get("child_pid"))
        child = self._children.get(child_key)
        if child is None:
            child = self._children[child_key] = _Child()
        ts_ms = c.event.ts_ms
        if c.timeout:
            child.add_timeout(c)
            # the SIGTERM that ends this timeout is no crash: the child's exits of the next seconds, each ending
            # the latest timeout before it (pids are reused). Only exits after it: of a later second, or of its
            # second and come after it (an exit of its second that came before it ended an earlier timeout; in an
            # outage a reused pid logs dozens a second, and each timeout took them all)
            exits = child.exits
            i = exits.bisect_left(c.at)
            while i < len(exits) and exits[i][0] <= ts_ms + TIMEOUT_EXIT_MS:
                other = exits[i][2]
                self.examined += 1
                if self._ends(other, c) and (other.follows is None or other.follows.at < c.at):
                    self._unlist(other)
                    other.ends(c)
                i += 1
        else:
            child.add_exit(c)
            timeouts = child.timeouts
            j = timeouts.bisect_left((ts_ms + 1,)) - 1  # the latest timeout at or before it
            if j >= 0:
                self.examined += 1
                if self._ends(c, timeouts[j][2]):
                    c.ends(timeouts[j][2])
                    return
        self._pools[pool] = self._pools.get(pool, 0) + 1
        kind = "timeout" if c.timeout else "crash"
        lists, keys, entry = self._lists, c.keys, c.entry
        for key in uri_keys(f.get("uri")):
            full = (pool, kind, *key)
            keys.append(full)
            lst = lists.get(full)
            if lst is None:
                lists[full] = SmallSorted((entry,))
                continue
            lst.add(entry)
            if len(lst) > GROW_AT:
                lists[full] = grown(lst)

    @staticmethod
    def _ends(exit_: Candidate, timeout: Candidate) -> bool:
        """``exited on signal 15`` at or shortly after ``execution timed out`` for that child is the timeout's
        end (the master sends SIGTERM and reaps the child at once)."""
        return (
            not exit_.timeout
            and exit_.event.fields.get("signal") == SIGTERM
            and 0 <= exit_.event.ts_ms - timeout.event.ts_ms <= TIMEOUT_EXIT_MS
        )

    def _unlist(self, c: Candidate) -> None:
        for key in c.keys:
            lst = self._lists[key]
            lst.remove(c.entry)
            if not lst:
                del self._lists[key]
        if c.keys:
            pool = c.event.fields.get("pool")
            self._pools[pool] -= 1
            if not self._pools[pool]:
                del self._pools[pool]
        c.keys = []

    def consume(self, event: Event) -> None:
        """``event`` explains a failure now: it explains no other (a timeout or an exit; lifecycle lines and
        ``max_children`` warnings stay)."""
        c = self._candidates.get(id(event))
        if c is not None and c.event is event and c.live:
            c.live = False
            self._unlist(c)

    def prune(self, horizon_ms: int, saturation_horizon_ms: int | None = None) -> int:
        """Drop every timeout and exit older than ``horizon_ms``, and every ``max_children`` warning older than
        ``saturation_horizon_ms`` (default: ``horizon_ms``); returns how many."""
        dropped = 0
        for held, horizon in (
            (self._held, horizon_ms),
            (self._held_saturation, horizon_ms if saturation_horizon_ms is None else saturation_horizon_ms),
        ):
            while held and held[0][0] < horizon:
                self._drop(heapq.heappop(held))
                dropped += 1
        return dropped

    def evict_oldest(self, count: int) -> None:
        for _ in range(min(count, len(self))):
            held, sat = self._held, self._held_saturation
            self._drop(heapq.heappop(held if held and (not sat or held[0][:2] < sat[0][:2]) else sat))

    def _drop(self, held: tuple[int, int, Event, Candidate | None]) -> None:
        ts_ms, seq, event, c = held
        if c is None:
            if event.fields.get("kind") == MAX_CHILDREN:
                self._saturation.remove((ts_ms, seq, event))
            return  # (an exit with code 0: held and counted, never a candidate)
        self._unlist(c)
        del self._candidates[id(event)]
        if c.follows is not None:
            c.follows.enders.remove(c)
        for ender in c.enders:
            ender.follows = None  # (its timeout is older than anything still held: it is dropped next)
        key = (event.fields.get("pool"), event.fields.get("child_pid"))
        child = self._children[key]
        if child.remove(c):
            del self._children[key]

    # -- queries -------------------------------------------------------------------------------
    def pools(self) -> Iterable[object]:
        """The pools holding candidates (a host runs a handful)."""
        return self._pools.keys()

    def nearest(self, key: _Key, t_ms: int, window_ms: int) -> Event | None:
        """The list's entry nearest to ``t_ms`` within ``window_ms``; among equally near ones the earliest in
        its log (the tie-break of ``causes.best_evidence``)."""
        lst = self._lists.get(key)
        if lst is None:
            return None
        self.examined += min(len(lst), 2)
        entry = nearest_entry(lst, t_ms, window_ms)
        return entry[3] if entry is not None else None

    def companion_exit(self, timeout: Event, t_ms: int, window_ms: int) -> Event | None:
        """The SIGTERM that ended the timeout's child, when held within the window. Only that exit: php-fpm
        reuses pids, and a later crash of a new child with the same pid is another failure's evidence."""
        candidate = self._candidates.get(id(timeout))
        for c in candidate.enders if candidate is not None else ():
            self.examined += 1
            if c.live and abs(c.event.ts_ms - t_ms) <= window_ms:
                return c.event
        return None

    def first_saturation(self, from_ms: int, to_ms: int) -> Event | None:
        """The earliest ``max_children`` warning in [from_ms, to_ms]."""
        sat = self._saturation
        i = sat.bisect_left((from_ms,))
        if i < len(sat):
            self.examined += 1
            ts_ms, _, event = sat[i]
            if ts_ms <= to_ms:
                return event  # type: ignore[no-any-return]
        return None
