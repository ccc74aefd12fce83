"""Event-time progress: one watermark per input stream, the join's watermark is their minimum.

Pure state, no clocks: processing time enters only as the ``now_ms`` argument.

``current()`` and ``idle_streams()`` are asked after every window-closing event (per failure, in an outage)
while thousands of streams (replayed files, topic partitions) may be open, so neither walks the streams:
a min-heap of the live streams' clocks gives the minimum, a second one (by the processing time each stream
was last seen) finds the streams gone quiet, and a stream found idle leaves the heaps until it moves again.
Heap entries are lower bounds, corrected when they reach the top (a stream's clocks only move forward; the heaps
are rebuilt when the wall clock goes back): a record costs no heap work, only the streams that reach the top
are looked at.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import cast

NO_WATERMARK = -(2**62)  # before every event time: no stream has said anything yet
END_OF_TIME = 2**62  # after every event time: every stream has ended
# A record ahead of its stream by more than the jump limit must be confirmed by this many more
# before the stream's watermark follows it (one far-future record must not make everything late).
_CONFIRMATIONS = 3
# StreamClock.parked: found idle by the last look, and out of the heaps until it moves
_LIVE, _LAGGING, _QUIET = 0, 1, 2  # _LAGGING: by event time; _QUIET: by processing time


@dataclass(slots=True)
class StreamClock:
    max_ts_ms: int = NO_WATERMARK
    last_seen_now_ms: int | None = None
    closed: bool = False
    log_type: str | None = None
    pending_jump: list[int] = field(default_factory=list)
    # what the driver knows of the input behind the stream: True = records not read yet (never idle), False =
    # read to its end (idle when quiet, at once if it never had a record), None = not told (quiet is enough)
    behind: bool | None = None
    touched: bool = False  # a record is held for it before the join (an open multi-line entry)
    # Watermarks' bookkeeping, not the stream's state: whether it has an entry in the heap of live clocks and
    # in the heap by last seen time, how it was found idle, and ``out`` = closed or quiet (observe revives it)
    in_live: bool = field(default=False, compare=False, repr=False)
    in_seen: bool = field(default=False, compare=False, repr=False)
    parked: int = field(default=_LIVE, compare=False, repr=False)
    out: bool = field(default=False, compare=False, repr=False)


@dataclass(slots=True)
class Watermarks:
    """Tracks each input stream; ``current()`` is min(max event time) − allowed lateness over live streams.

    ``idle_timeout_ms``: a stream that has sent nothing for that long stops holding the watermark back —
    measured in processing time when the driver passes ``now_ms`` (the Kafka service), else in event time
    against the most advanced stream (batch replay). A driver that knows where each input ends says so
    (``set_behind``): a stream with records not read yet is never idle (a catch-up slower than the timeout
    closes no window early), one read to its end that never had a record is idle at once. When every open
    stream is idle by processing time, the wall clock moves the watermark: the newest event time plus the time
    since the last record, minus the lateness (so quiet inputs still close their windows).
    """

    allowed_lateness_ms: int
    idle_timeout_ms: int
    max_jump_ms: int
    streams: dict[str, StreamClock] = field(default_factory=dict)
    global_max_ts_ms: int = NO_WATERMARK
    now_ms: int | None = None
    future_records: int = 0
    # False when the driver merges its inputs in event time (batch replay) and reports each stream's
    # progress itself: then a stream whose clock lags (a host with a skewed clock) is not "idle"
    event_time_idle: bool = True
    last_record_now_ms: int | None = None  # processing time of the newest record (observe, touch)
    # stream clocks looked at by current() and idle_streams(), all told (a cost measure for tests)
    examined: int = field(default=0, compare=False)
    # moves on whenever something current() reads may have changed (a clock, a stream's rules, the wall clock):
    # a caller that asked current() at one version may skip asking again at the same version
    version: int = field(default=0, compare=False)
    _live: list[tuple[int, str]] = field(default_factory=list, compare=False, repr=False)  # (max_ts_ms, stream)
    _seen: list[tuple[int, str]] = field(default_factory=list, compare=False, repr=False)  # (last_seen_now_ms, …)
    _idle: set[str] = field(default_factory=set, compare=False, repr=False)  # parked streams (not closed)
    _idle_sorted: list[str] | None = field(default=None, compare=False, repr=False)
    _open: int = field(default=0, compare=False, repr=False)  # streams not closed
    _unseen: list[str] = field(default_factory=list, compare=False, repr=False)  # last_seen_now_ms maybe None
    _mode: tuple[bool, bool, int] | None = field(default=None, compare=False, repr=False)  # the heaps' rules
    _slow: bool = field(default=False, compare=False, repr=False)  # a state the heaps do not cover: walk

    def __post_init__(self) -> None:
        self._rebuild()

    def _arrived(self, stream: str, log_type: str | None) -> StreamClock:
        """A record of ``stream`` arrived: its clock (new, or back from closed or quiet), seen now."""
        clock = self.streams.get(stream)
        if clock is None:
            clock = self.streams[stream] = StreamClock(last_seen_now_ms=self.now_ms, log_type=log_type)
            self._add(stream, clock)
            self.version += 1
        elif clock.out:
            self._revive(stream, clock)
            self.version += 1
        clock.last_seen_now_ms = self.last_record_now_ms = self.now_ms
        return clock

    def observe(self, stream: str, ts_ms: int, log_type: str | None = None) -> None:
        clock = self._arrived(stream, log_type)
        now_ms = self.now_ms
        if now_ms is not None and ts_ms > now_ms + self.max_jump_ms:
            self.future_records += 1  # ahead of the wall clock: never advances the watermark
            return
        max_ts_ms = clock.max_ts_ms
        if max_ts_ms != NO_WATERMARK and ts_ms > max_ts_ms + self.max_jump_ms:
            clock.pending_jump.append(ts_ms)
            if len(clock.pending_jump) < _CONFIRMATIONS:
                self.future_records += 1
                return
            ts_ms = min(clock.pending_jump)
        if clock.pending_jump:  # (a method call per line saved when empty)
            clock.pending_jump.clear()
        if ts_ms > max_ts_ms:
            clock.max_ts_ms = ts_ms
            self.version += 1
            if ts_ms > self.global_max_ts_ms:
                self.global_max_ts_ms = ts_ms
            if clock.parked:
                self._unpark(stream, clock)

    def declare(self, stream: str, ts_ms: int, log_type: str | None = None) -> None:
        """A stream known to start at ``ts_ms`` (a replayed file's first entry): it holds the watermark
        from now on, even before its first event reaches the join."""
        clock = self.streams.get(stream)
        if clock is None:
            clock = self.streams[stream] = StreamClock(max_ts_ms=ts_ms, last_seen_now_ms=self.now_ms, log_type=log_type)
            self._add(stream, clock)
            self.version += 1

    def touch(self, stream: str, log_type: str | None = None) -> None:
        """A record of the stream arrived that the join does not see yet (the first line of a multi-line entry):
        the stream is not quiet, and holds the watermark at its clock until the entry comes."""
        clock = self._arrived(stream, log_type)
        if not clock.touched:
            clock.touched = True
            self._mode = None  # (whether it can be idle at once changed)
            self.version += 1

    def seen_at(self, stream: str, seen_now_ms: int | None) -> None:
        """The stream's last record was read at ``seen_now_ms`` (an entry completed later, when its stream went
        quiet: its quiet time runs from its lines' arrival, not from its completion)."""
        clock = self.streams.get(stream)
        if clock is not None and self.now_ms is not None and clock.last_seen_now_ms != seen_now_ms:
            clock.last_seen_now_ms = seen_now_ms
            self._mode = None
            self.version += 1

    def set_behind(self, stream: str, behind: bool | None) -> None:
        """The driver's word on the stream's input: records not read yet (``True``), read to its end (``False``),
        or nothing known (``None``: quiet is idle)."""
        clock = self.streams.get(stream)
        if clock is not None and clock.behind is not behind:
            clock.behind = behind
            self._mode = None  # the heaps' rules for it changed: rebuilt at the next look
            self.version += 1

    def advance(self, stream: str, ts_ms: int) -> None:
        """The stream has nothing before ``ts_ms`` (its next entry is there): move its clock, no event."""
        clock = self.streams.get(stream)
        if clock is not None and ts_ms > clock.max_ts_ms:
            if _empty(clock):
                self._mode = None  # (idle at once no more: the rebuild looks at it again)
            clock.max_ts_ms = ts_ms
            self.version += 1
            if ts_ms > self.global_max_ts_ms:
                self.global_max_ts_ms = ts_ms
            if clock.parked == _LAGGING:
                self._unpark(stream, clock)

    def tick(self, now_ms: int) -> None:
        self.version += 1
        if self.now_ms is not None and now_ms < self.now_ms:
            self._mode = None  # the wall clock went back: quiet streams may not be quiet any more
        self.now_ms = now_ms
        if self.last_record_now_ms is None and self.streams:
            self.last_record_now_ms = now_ms  # records came before the first tick: as if at it
        streams = self.streams
        for stream in self._unseen:
            clock = streams[stream]
            if clock.last_seen_now_ms is None:
                clock.last_seen_now_ms = now_ms
        self._unseen.clear()
        if self._slow:
            self._mode = None

    def close(self, stream: str) -> None:
        """End of a stream (end of file): it no longer holds the watermark back."""
        self.version += 1
        clock = self.streams.get(stream)
        if clock is None:
            clock = self.streams[stream] = StreamClock(closed=True, out=True)
            self._unseen.append(stream)
        elif not clock.closed:
            self._open -= 1
            clock.closed = clock.out = True
            if clock.parked:
                self._unpark(stream, clock, push=False)
        clock.pending_jump.clear()

    def is_idle(self, clock: StreamClock) -> bool:
        if clock.closed:
            return True
        if clock.behind:
            return False
        if self.now_ms is not None and clock.last_seen_now_ms is not None:
            if _empty(clock):
                return True
            return self.now_ms - clock.last_seen_now_ms > self.idle_timeout_ms
        if not self.event_time_idle:
            return False
        return self.global_max_ts_ms - clock.max_ts_ms > self.idle_timeout_ms

    def idle_streams(self) -> list[str]:
        """The streams not closed that hold the watermark back no more, sorted."""
        if self.now_ms is None and not self.event_time_idle:
            return []  # a merging driver's streams: only closing one ends it
        self._refresh()
        if self._slow:
            return sorted(s for s, c in self.streams.items() if not c.closed and self.is_idle(c))
        if self._idle_sorted is None:
            self._idle_sorted = sorted(self._idle)
        return list(self._idle_sorted)

    def current(self) -> int:
        least = self._refresh()
        if self._slow:
            live = [c.max_ts_ms for c in self.streams.values() if not self.is_idle(c)]
            least = min(live) if live else None
        if least is not None:
            return least - self.allowed_lateness_ms
        if self._open:
            # every stream idle: follow the most advanced one, and by processing time the wall clock since the
            # last record (nothing is coming that a window could wait for)
            since_ms = 0
            if (
                self.now_ms is not None
                and self.last_record_now_ms is not None
                and self.global_max_ts_ms != NO_WATERMARK
            ):
                since_ms = max(0, self.now_ms - self.last_record_now_ms)
            return self.global_max_ts_ms + since_ms - self.allowed_lateness_ms
        return NO_WATERMARK if not self.streams else END_OF_TIME

    # -- the heaps -------------------------------------------------------------------------------
    def _refresh(self) -> int | None:
        """Park the streams found idle and return the least live clock (``None``: no live stream)."""
        now_ms = self.now_ms
        if self._mode != (now_ms is not None, self.event_time_idle, self.idle_timeout_ms):
            self._rebuild()
        if self._slow:
            self.examined += len(self.streams)
            return None
        streams = self.streams
        if now_ms is not None:
            quiet_before = now_ms - self.idle_timeout_ms
            seen = self._seen
            while seen and seen[0][0] < quiet_before:
                stream = seen[0][1]
                clock = streams[stream]
                self.examined += 1
                last = clock.last_seen_now_ms
                if clock.out or clock.behind:  # (a behind stream is never quiet: set_behind rebuilds)
                    heapq.heappop(seen)
                    clock.in_seen = False
                elif last is not None and last >= quiet_before:
                    # (not above now: after the wall clock went back, the next records are seen at now)
                    heapq.heapreplace(seen, (min(last, now_ms), stream))
                else:  # quiet: idle by processing time until it sends again
                    heapq.heappop(seen)
                    clock.in_seen = False
                    clock.parked, clock.out = _QUIET, True
                    self._idle.add(stream)
                    self._idle_sorted = None
            lag_before = None
        else:
            lag_before = self.global_max_ts_ms - self.idle_timeout_ms if self.event_time_idle else None
        live = self._live
        while live:
            value, stream = live[0]
            clock = streams[stream]
            self.examined += 1
            if clock.out or clock.parked:
                heapq.heappop(live)
                clock.in_live = False
                continue
            max_ts_ms = clock.max_ts_ms
            if max_ts_ms != value:
                heapq.heapreplace(live, (max_ts_ms, stream))
            elif (
                lag_before is not None and max_ts_ms < lag_before and not clock.behind
            ):  # lagging: idle by event time until it moves
                heapq.heappop(live)
                clock.in_live = False
                clock.parked = _LAGGING
                self._idle.add(stream)
                self._idle_sorted = None
            else:
                return max_ts_ms
        return None

    def _rebuild(self) -> None:
        """The heaps from the clocks, for the rules of the moment (at start, when a rule changes)."""
        by_time = self.now_ms is not None
        self._mode = (by_time, self.event_time_idle, self.idle_timeout_ms)
        live: list[tuple[int, str]] = []
        seen: list[tuple[int, str]] = []
        self._open = 0
        self._slow = self.idle_timeout_ms < 0  # (then a stream is quiet before it was last seen: walk)
        self._unseen = []
        idle: set[str] = set()
        for stream, clock in self.streams.items():
            clock.parked, clock.out, clock.in_live, clock.in_seen = _LIVE, clock.closed, False, False
            if clock.last_seen_now_ms is None:
                self._unseen.append(stream)
            if clock.closed:
                continue
            self._open += 1
            if by_time and _empty(clock) and clock.last_seen_now_ms is not None:  # read to its end, nothing in it
                clock.parked, clock.out = _QUIET, True
                idle.add(stream)
                continue
            live.append((clock.max_ts_ms, stream))
            clock.in_live = True
            if clock.behind and not by_time:
                self._slow = True  # a behind stream at the heap's top would hide the lagging ones below it
            if by_time and not clock.behind:
                if clock.last_seen_now_ms is None:
                    self._slow = True  # the event-time rule for it beside the processing-time one: walk
                else:  # a lower bound of the times it will be seen at
                    seen.append((min(clock.last_seen_now_ms, cast(int, self.now_ms)), stream))
                    clock.in_seen = True
        heapq.heapify(live)
        heapq.heapify(seen)
        self._live, self._seen = live, seen
        self._idle = idle
        self._idle_sorted = None

    def _add(self, stream: str, clock: StreamClock) -> None:
        """A new open stream's clock."""
        self._open += 1
        heapq.heappush(self._live, (clock.max_ts_ms, stream))
        clock.in_live = True
        if clock.last_seen_now_ms is None:
            self._unseen.append(stream)
        elif self._mode is not None and self._mode[0]:
            heapq.heappush(self._seen, (clock.last_seen_now_ms, stream))
            clock.in_seen = True

    def _revive(self, stream: str, clock: StreamClock) -> None:
        """A closed or quiet stream sends again (``observe`` sets its last seen time to now)."""
        if clock.closed:
            clock.closed = False
            self._open += 1
        clock.out = False
        if _empty(clock):
            self._mode = None  # (still idle at once: the rebuild parks it again)
        self._unpark(stream, clock)
        if self.now_ms is not None and not clock.in_seen:
            heapq.heappush(self._seen, (self.now_ms, stream))
            clock.in_seen = True

    def _unpark(self, stream: str, clock: StreamClock, *, push: bool = True) -> None:
        """The stream moved (or closed): not idle as far as the heaps know; the next look decides."""
        if clock.parked:
            clock.parked = _LIVE
            self._idle.discard(stream)
            self._idle_sorted = None
        if push and not clock.in_live:
            heapq.heappush(self._live, (clock.max_ts_ms, stream))
            clock.in_live = True


def _empty(clock: StreamClock) -> bool:
    """Read to its end by the driver's word, and never a record in it."""
    return clock.behind is False and clock.max_ts_ms == NO_WATERMARK and not clock.touched
