"""The state the join keeps per host: pending failures, PHP-FPM evidence, master lifecycles; and its settings.

Plain data with small pure helpers, so ``processor.diagnosis.join`` reads as the algorithm.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from processor.core.events import NGINX_ACCESS, Event
from processor.core.sorted_entries import GROW_AT, SmallSorted, SortedEntries, grown, nearest_entry
from processor.core.watermark import NO_WATERMARK
from processor.diagnosis.evidence import TIMEOUT_EXIT_MS, EvidenceIndex, Position, log_position


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """Windows of the join, in milliseconds (converted from config units once, at the edge)."""

    match_window_ms: int = 2_000  # access line ↔ error entry
    evidence_window_ms: int = 5_000  # error entry ↔ PHP-FPM evidence (either side)
    saturation_lookback_ms: int = 60_000  # `max_children` is logged once per episode
    allowed_lateness_ms: int = 5_000
    idle_timeout_ms: int = 30_000
    max_jump_ms: int = 3_600_000
    max_state: int = 1_000_000

    @property
    def release_ms(self) -> int:
        return self.match_window_ms + self.evidence_window_ms

    @property
    def candidate_retain_ms(self) -> int:
        """How long behind the watermark a PHP-FPM timeout or exit line is held (``max_children`` warnings are held
        for ``release_ms + saturation_lookback_ms``). An open window's failure is at most ``release_ms`` behind
        it, its error entry up to ``match_window_ms`` from the failure and its evidence up to
        ``evidence_window_ms`` from that entry; an exit still to come is at most ``allowed_lateness_ms`` behind,
        and ends a timeout up to ``TIMEOUT_EXIT_MS`` before it."""
        return max(
            self.release_ms + self.match_window_ms + self.evidence_window_ms,
            self.allowed_lateness_ms + TIMEOUT_EXIT_MS,
        )


@dataclass(slots=True)
class Pending:
    event: Event
    is_access: bool
    key: tuple[str | None, str | None]
    cid: int | None
    item_id: str
    late: bool
    consumed: bool = False
    position: Position | None = None  # log_position(event), when the holder has it


class ReleaseQueue:
    """The failures and anchors waiting in their windows, taken in the order their windows close: release time,
    then access lines first, then log position, then arrival.

    A heap of these entries compared whole tuples at every step, and in an outage hundreds share their release
    (lines write whole seconds), so each step compared down to the log position. Here the entries of one release
    wait in a list of their own (``push`` is an append) and are sorted once, when their release comes first.
    """

    __slots__ = ("_buckets", "_releases", "_size", "_sorted")

    def __init__(self) -> None:
        self._releases: list[int] = []  # a heap of the releases that have entries
        # release → its entries (access first?, log position, arrival, pending); the first release's list, once
        # taken from, sorted last-first (``_sorted``) so each take is a pop from its end
        self._buckets: dict[int, list[tuple[int, Position, int, Pending]]] = {}
        self._sorted: int | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Pending]:
        for bucket in self._buckets.values():
            for entry in bucket:
                yield entry[3]

    def push(self, release: int, access_first: int, position: Position, seq: int, p: Pending) -> None:
        bucket = self._buckets.get(release)
        if bucket is None:
            self._buckets[release] = [(access_first, position, seq, p)]
            heapq.heappush(self._releases, release)
        else:
            bucket.append((access_first, position, seq, p))
            if release == self._sorted:
                self._sorted = None
        self._size += 1

    def first_release(self) -> int | None:
        """The release time of the entry due first (``None``: nothing waits)."""
        return self._releases[0] if self._releases else None

    def pop(self) -> Pending:
        """The entry due first, taken out."""
        release = self._releases[0]
        bucket = self._buckets[release]
        if self._sorted != release:
            bucket.sort(reverse=True)
            self._sorted = release
        entry = bucket.pop()
        if not bucket:
            del self._buckets[release]
            heapq.heappop(self._releases)
            self._sorted = None
        self._size -= 1
        return entry[3]


class Waiting:
    """The failures (or error anchors) of one host and one match key still in a window, indexed so that
    finding a partner or a duplicate looks at a bounded number of them, however many an outage holds (in an
    outage one load balancer sends the same ``GET /`` thousands of times: one key, thousands of entries)."""

    __slots__ = ("all", "connected", "unconnected", "by_connection", "one_stream", "by_stream")

    def __init__(self) -> None:
        # (ts, log position, item_id, pending): among entries of one time, the earlier line of its log first
        self.all: SortedEntries = SmallSorted()
        self.connected = 0  # entries with a connection id
        # the entries without one, apart only while both kinds wait (else `all` is either)
        self.unconnected: SortedEntries | None = None
        self.by_connection: dict[int, list[Pending]] = {}
        # access entries by (stream, status), apart only once two such keys wait (one access log, the common
        # case, keeps one: `one_stream`, and `all` is its list)
        self.one_stream: tuple[str, object] | None = None
        self.by_stream: dict[tuple[str, object], SortedEntries] | None = None

    def __len__(self) -> int:
        return len(self.all)

    def add(self, p: Pending) -> None:
        entry = _entry(p)
        entries = self.all
        entries.add(entry)
        if len(entries) > GROW_AT:
            self.all = grown(entries)
        if p.cid is None:
            if self.unconnected is not None:
                self.unconnected.add(entry)
                self.unconnected = grown(self.unconnected)
        else:
            self.connected += 1
            self.by_connection.setdefault(p.cid, []).append(p)
        if self.unconnected is None and 0 < self.connected < len(self.all):
            self.unconnected = grown(SmallSorted(e for e in self.all if e[3].cid is None))
        if p.is_access:
            key = (p.event.source.stream, p.event.fields.get("status"))
            if self.by_stream is None:
                if self.one_stream is None or self.one_stream == key:
                    self.one_stream = key
                    return
                self.by_stream = {self.one_stream: grown(SmallSorted(e for e in self.all if e is not entry))}
            by_stream = self.by_stream.get(key)
            if by_stream is None:
                by_stream = self.by_stream[key] = SmallSorted()
            by_stream.add(entry)
            self.by_stream[key] = grown(by_stream)

    def remove(self, p: Pending) -> None:
        entry = _entry(p)
        self.all.remove(entry)
        if p.cid is None:
            if self.unconnected is not None:
                self.unconnected.remove(entry)
        else:
            self.connected -= 1
            connection = self.by_connection[p.cid]
            connection.remove(p)
            if not connection:
                del self.by_connection[p.cid]
        if not self.connected:
            self.unconnected = None
        if p.is_access and self.by_stream is not None:
            key = (p.event.source.stream, p.event.fields.get("status"))
            by_stream = self.by_stream[key]
            by_stream.remove(entry)
            if not by_stream:
                del self.by_stream[key]

    def partner_for(self, p: Pending, window_ms: int) -> Pending | None:
        """The entry ``p`` pairs with: of its own connection first, else one that names no connection
        (another connection's entry is another request); then the nearest in time, then the earlier line of its
        log (NGINX writes the errors of one request in the order it met them: the first upstream it tried is
        the first line), then the smaller id."""
        t_ms = p.event.ts_ms
        if p.cid is None or not self.connected:  # every entry is a candidate of the same rank
            return _pending(nearest_entry(self.all, t_ms, window_ms))
        best: tuple[int, Position, str] | None = None
        chosen: Pending | None = None
        for q in self.by_connection.get(p.cid, ()):
            dt = abs(q.event.ts_ms - t_ms)
            if dt <= window_ms and (best is None or (dt, log_position(q.event), q.item_id) < best):
                best, chosen = (dt, log_position(q.event), q.item_id), q
        if chosen is not None or self.unconnected is None:
            return chosen
        return _pending(nearest_entry(self.unconnected, t_ms, window_ms))

    def later_access(self, p: Pending, window_ms: int, reach_ms: Callable[[Event], int]) -> Pending | None:
        """The access line ``p`` (an error entry with no partner within ``window_ms``) pairs with after all: the
        first one written more than ``window_ms`` after it whose request was still open then (``reach_ms`` of the
        line: how long before its own time its request's error may be). NGINX logs a request when it ends, and a
        request whose upstream failed while its body was still coming ends only once the client stopped sending
        (docs/causes.md, "How a failure is assembled"). Of its own connection first, as ``partner_for``; else one
        bisection and one entry looked at."""
        t_ms = p.event.ts_ms
        if p.cid is not None and self.connected:
            own = [
                q for q in self.by_connection.get(p.cid, ()) if window_ms < q.event.ts_ms - t_ms <= reach_ms(q.event)
            ]
            if own or self.unconnected is None:
                return min(own, key=_entry) if own else None
            entries = self.unconnected
        else:
            entries = self.all
        i = entries.bisect_left((t_ms + window_ms + 1,))
        if i < len(entries):
            q: Pending = entries[i][3]
            if q.event.ts_ms - t_ms <= reach_ms(q.event):
                return q
        return None

    def same_request_elsewhere(self, access: Event, window_ms: int) -> list[Pending]:
        """The same request in each other access log: per other stream, the nearest entry of the same status."""
        found = []
        status = access.fields.get("status")
        if self.by_stream is None:
            lists = {self.one_stream: self.all} if self.one_stream is not None and self.all else {}
        else:
            lists = self.by_stream
        for (stream, entry_status), entries in lists.items():
            if stream != access.source.stream and entry_status == status:
                q = _pending(nearest_entry(entries, access.ts_ms, window_ms))
                if q is not None:
                    found.append(q)
        return found

    def same_connection(self, cid: int) -> list[Pending]:
        return list(self.by_connection.get(cid, ()))


def _entry(p: Pending) -> tuple[int, Position, str, Pending]:
    return p.event.ts_ms, p.position or log_position(p.event), p.item_id, p


def _pending(entry: tuple[int, Position, str, Pending] | None) -> Pending | None:
    return entry[3] if entry is not None else None


Lifecycle = tuple[int, bool, str, Event]  # (time, up?, raw line, event) of one master's lifecycle line
_LAST: tuple[object, ...] = ("\U0010ffff",)  # after every log position


def timeline_order(entry: Lifecycle) -> tuple[int, tuple[object, ...]]:
    """A lifecycle line's place in its master's timeline: time, then its place in its log."""
    return entry[0], log_position(entry[3])


@dataclass(slots=True)
class Master:
    """One PHP-FPM master as seen through its log: the pools it runs and when it was up."""

    pools: set[str] = field(default_factory=set)
    timeline: list[Lifecycle] = field(default_factory=list)

    def state_at(self, ts_ms: int) -> tuple[bool, Event] | None:
        """(up?, the line saying so) at ``ts_ms``. A master down at any moment of that second counts as down,
        even if it logged its restart in that second too: PHP-FPM and NGINX write whole seconds, and a
        `systemctl restart` is over in a fraction of one; a failure in that second met the master down. So
        does a master down when the second began (it stopped the second before, and is back within this one)."""
        timeline = self.timeline
        i = bisect.bisect_right(timeline, (ts_ms, _LAST), key=timeline_order)  # (x is a key already)
        if i == 0:
            return None
        _, up, _, ev = timeline[i - 1]
        if up:
            second = ts_ms - ts_ms % 1000
            j = i - 1
            while j >= 0 and timeline[j][0] >= second:  # the lines of that second (a handful)
                if not timeline[j][1]:
                    return False, timeline[j][3]
                j -= 1
            if j >= 0 and j < i - 1 and not timeline[j][1]:  # down when the second began, up within it
                return False, timeline[j][3]
        return up, ev


@dataclass(slots=True)
class HostState:
    access: dict[tuple[str | None, str | None], Waiting] = field(default_factory=dict)
    errors: dict[tuple[str | None, str | None], Waiting] = field(default_factory=dict)
    waiting_ids: set[str] = field(default_factory=set)  # item ids of the failures and anchors in a window
    evidence: EvidenceIndex = field(default_factory=EvidenceIndex)
    masters: dict[str, Master] = field(default_factory=dict)
    seen_types: set[str] = field(default_factory=set)
    pending: int = 0  # failures and anchors of this host still in a window
    last_ts_ms: int = NO_WATERMARK
    # per stream: the second of its newest failed access line, and how often each text came in that second
    repeats: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)

    def repeat_of(self, event: Event) -> int:
        """How many lines of this very text came before it in its stream's newest second (docs/causes.md,
        "Identical access lines"). NGINX writes one access line per request, so behind a load balancer or a
        NAT (one client address) identical lines in one second are as many requests. A line of an older
        second than the stream's newest counts 0: a resent stretch of the log (a shipper's retry) comes back
        after newer lines and keeps its ids, so it is not counted twice."""
        second = event.ts_ms // 1000
        stream = event.source.stream
        seen = self.repeats.get(stream)
        if seen is None or second > seen[0]:
            self.repeats[stream] = (second, {event.raw: 1})
            return 0
        if second < seen[0]:
            return 0
        counts = seen[1]
        n = counts.get(event.raw, 0)
        counts[event.raw] = n + 1
        return n


def match_key(ev: Event) -> tuple[str | None, str | None]:
    f = ev.fields
    client = f.get("remote_addr") if ev.log_type == NGINX_ACCESS else f.get("client")
    return client, f.get("request")


def connection_id(ev: Event) -> int | None:
    value = ev.fields.get("connection" if ev.log_type == NGINX_ACCESS else "cid")
    return value if isinstance(value, int) else None
