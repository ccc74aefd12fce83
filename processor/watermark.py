"""Event-time progress: one watermark per input stream, the join's watermark is their minimum.

Pure state, no clocks: processing time enters only as the ``now_ms`` argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NO_WATERMARK = -(2**62)
# A record ahead of its stream by more than the jump limit must be confirmed by this many more
# before the stream's watermark follows it (one far-future record must not make everything late).
_CONFIRMATIONS = 3


@dataclass(slots=True)
class StreamClock:
    max_ts_ms: int = NO_WATERMARK
    last_seen_now_ms: int | None = None
    closed: bool = False
    log_type: str | None = None
    pending_jump: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Watermarks:
    """Tracks each input stream; ``current()`` is min(max event time) − allowed lateness over live streams.

    ``idle_timeout_ms``: a stream that has sent nothing for that long stops holding the watermark back —
    measured in processing time when the driver passes ``now_ms`` (the Kafka service), else in event time
    against the most advanced stream (batch replay).
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

    def observe(self, stream: str, ts_ms: int, log_type: str | None = None) -> None:
        clock = self.streams.get(stream)
        if clock is None:
            clock = self.streams[stream] = StreamClock(log_type=log_type)
        now_ms = clock.last_seen_now_ms = self.now_ms
        clock.closed = False
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
            if ts_ms > self.global_max_ts_ms:
                self.global_max_ts_ms = ts_ms

    def declare(self, stream: str, ts_ms: int, log_type: str | None = None) -> None:
        """A stream known to start at ``ts_ms`` (a replayed file's first entry): it holds the watermark
        from now on, even before its first event reaches the join."""
        clock = self.streams.get(stream)
        if clock is None:
            self.streams[stream] = StreamClock(max_ts_ms=ts_ms, last_seen_now_ms=self.now_ms, log_type=log_type)

    def advance(self, stream: str, ts_ms: int) -> None:
        """The stream has nothing before ``ts_ms`` (its next entry is there): move its clock, no event."""
        clock = self.streams.get(stream)
        if clock is not None and ts_ms > clock.max_ts_ms:
            clock.max_ts_ms = ts_ms
            if ts_ms > self.global_max_ts_ms:
                self.global_max_ts_ms = ts_ms

    def tick(self, now_ms: int) -> None:
        self.now_ms = now_ms
        for clock in self.streams.values():
            if clock.last_seen_now_ms is None:
                clock.last_seen_now_ms = now_ms

    def close(self, stream: str) -> None:
        """End of a stream (end of file): it no longer holds the watermark back."""
        clock = self.streams.setdefault(stream, StreamClock())
        clock.closed = True
        clock.pending_jump.clear()

    def is_idle(self, clock: StreamClock) -> bool:
        if clock.closed:
            return True
        if self.now_ms is not None and clock.last_seen_now_ms is not None:
            return self.now_ms - clock.last_seen_now_ms > self.idle_timeout_ms
        if not self.event_time_idle:
            return False
        return self.global_max_ts_ms - clock.max_ts_ms > self.idle_timeout_ms

    def idle_streams(self) -> list[str]:
        return sorted(s for s, c in self.streams.items() if not c.closed and self.is_idle(c))

    def current(self) -> int:
        live = [c.max_ts_ms for c in self.streams.values() if not self.is_idle(c)]
        if live:
            return min(live) - self.allowed_lateness_ms
        if any(not c.closed for c in self.streams.values()):
            # every stream idle: follow the most advanced one
            return self.global_max_ts_ms - self.allowed_lateness_ms
        return NO_WATERMARK if not self.streams else 2**62
