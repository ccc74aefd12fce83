"""The state the join keeps per host: pending failures, PHP-FPM evidence, master lifecycles; and its settings.

Plain data with small pure helpers, so ``processor.diagnosis.join`` reads as the algorithm.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from processor.core.events import NGINX_ACCESS, Event
from processor.diagnosis.evidence import EvidenceIndex, log_position
from processor.core.sorted_entries import SmallSorted, SortedEntries, grown, nearest_entry
from processor.core.watermark import NO_WATERMARK

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


@dataclass(slots=True)
class Pending:
    event: Event
    is_access: bool
    key: tuple[str | None, str | None]
    cid: int | None
    item_id: str
    late: bool
    consumed: bool = False

    @property
    def entry(self) -> tuple[int, str, Pending]:
        return self.event.ts_ms, self.item_id, self


class Waiting:
    """The failures (or error anchors) of one host and one match key still in a window, indexed so that
    finding a partner or a duplicate looks at a bounded number of them, however many an outage holds (in an
    outage one load balancer sends the same ``GET /`` thousands of times: one key, thousands of entries)."""

    __slots__ = ("all", "connected", "unconnected", "by_connection", "one_stream", "by_stream")

    def __init__(self) -> None:
        self.all: SortedEntries = SmallSorted()  # (ts, item_id, pending)
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
        entry = p.entry
        self.all.add(entry)
        self.all = grown(self.all)
        if p.cid is None:
            if self.unconnected is not None:
                self.unconnected.add(entry)
                self.unconnected = grown(self.unconnected)
        else:
            self.connected += 1
            self.by_connection.setdefault(p.cid, []).append(p)
        if self.unconnected is None and 0 < self.connected < len(self.all):
            self.unconnected = grown(SmallSorted(e for e in self.all if e[2].cid is None))
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
        entry = p.entry
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
        (another connection's entry is another request); then the nearest in time, then the smaller id."""
        t_ms = p.event.ts_ms
        if p.cid is None or not self.connected:  # every entry is a candidate of the same rank
            return _pending(nearest_entry(self.all, t_ms, window_ms))
        best: tuple[int, str] | None = None
        chosen: Pending | None = None
        for q in self.by_connection.get(p.cid, ()):
            dt = abs(q.event.ts_ms - t_ms)
            if dt <= window_ms and (best is None or (dt, q.item_id) < best):
                best, chosen = (dt, q.item_id), q
        if chosen is not None or self.unconnected is None:
            return chosen
        return _pending(nearest_entry(self.unconnected, t_ms, window_ms))

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


def _pending(entry: tuple[int, str, Pending] | None) -> Pending | None:
    return entry[2] if entry is not None else None


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
        """(up?, the line saying so) at ``ts_ms``. A master that went down within that same second counts as
        down even if it logged its restart in that second too: PHP-FPM and NGINX write whole seconds, and a
        `systemctl restart` is over in a fraction of one; a failure in that second met the master down."""
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


def match_key(ev: Event) -> tuple[str | None, str | None]:
    f = ev.fields
    client = f.get("remote_addr") if ev.log_type == NGINX_ACCESS else f.get("client")
    return client, f.get("request")


def connection_id(ev: Event) -> int | None:
    value = ev.fields.get("connection" if ev.log_type == NGINX_ACCESS else "cid")
    return value if isinstance(value, int) else None
