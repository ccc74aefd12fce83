"""Watermarks over many streams: the same answers as walking every stream, at a cost that does not grow with them.

``Reference`` is the straightforward implementation ``Watermarks`` had before its heaps (issue #23: replaying
10,000 files spent 88 s walking every stream's clock per window closed): hypothesis drives both through the
same random observe/declare/advance/tick/close sequences and compares ``current()`` and ``idle_streams()``
after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.watermark import NO_WATERMARK, Watermarks

_CONFIRMATIONS = 3


@dataclass
class _Clock:
    max_ts_ms: int = NO_WATERMARK
    last_seen_now_ms: int | None = None
    closed: bool = False
    pending_jump: list[int] = field(default_factory=list)
    behind: bool | None = None
    touched: bool = False


@dataclass
class Reference:
    """``processor.core.watermark.Watermarks`` as it was: every question walks every stream."""

    allowed_lateness_ms: int
    idle_timeout_ms: int
    max_jump_ms: int
    streams: dict[str, _Clock] = field(default_factory=dict)
    global_max_ts_ms: int = NO_WATERMARK
    now_ms: int | None = None
    future_records: int = 0
    event_time_idle: bool = True
    last_record_now_ms: int | None = None

    def observe(self, stream: str, ts_ms: int) -> None:
        clock = self.streams.setdefault(stream, _Clock())
        now_ms = clock.last_seen_now_ms = self.last_record_now_ms = self.now_ms
        clock.closed = False
        if now_ms is not None and ts_ms > now_ms + self.max_jump_ms:
            self.future_records += 1
            return
        if clock.max_ts_ms != NO_WATERMARK and ts_ms > clock.max_ts_ms + self.max_jump_ms:
            clock.pending_jump.append(ts_ms)
            if len(clock.pending_jump) < _CONFIRMATIONS:
                self.future_records += 1
                return
            ts_ms = min(clock.pending_jump)
        clock.pending_jump.clear()
        if ts_ms > clock.max_ts_ms:
            clock.max_ts_ms = ts_ms
            self.global_max_ts_ms = max(self.global_max_ts_ms, ts_ms)

    def declare(self, stream: str, ts_ms: int) -> None:
        if stream not in self.streams:
            self.streams[stream] = _Clock(max_ts_ms=ts_ms, last_seen_now_ms=self.now_ms)

    def touch(self, stream: str, _: int) -> None:
        clock = self.streams.setdefault(stream, _Clock())
        clock.closed = False
        clock.last_seen_now_ms = self.last_record_now_ms = self.now_ms
        clock.touched = True

    def set_behind(self, stream: str, behind: int) -> None:
        if stream in self.streams:
            self.streams[stream].behind = bool(behind)

    def seen_at(self, stream: str, seen_now_ms: int) -> None:
        if stream in self.streams and self.now_ms is not None:
            self.streams[stream].last_seen_now_ms = seen_now_ms

    def advance(self, stream: str, ts_ms: int) -> None:
        clock = self.streams.get(stream)
        if clock is not None and ts_ms > clock.max_ts_ms:
            clock.max_ts_ms = ts_ms
            self.global_max_ts_ms = max(self.global_max_ts_ms, ts_ms)

    def tick(self, now_ms: int) -> None:
        self.now_ms = now_ms
        if self.last_record_now_ms is None and self.streams:
            self.last_record_now_ms = now_ms
        for clock in self.streams.values():
            if clock.last_seen_now_ms is None:
                clock.last_seen_now_ms = now_ms

    def close(self, stream: str) -> None:
        clock = self.streams.setdefault(stream, _Clock())
        clock.closed = True
        clock.pending_jump.clear()

    def is_idle(self, clock: _Clock) -> bool:
        if clock.closed:
            return True
        if clock.behind:
            return False
        if self.now_ms is not None and clock.last_seen_now_ms is not None:
            if clock.behind is False and clock.max_ts_ms == NO_WATERMARK and not clock.touched:
                return True  # read to its end, never a record in it
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
            since = 0
            if (
                self.now_ms is not None
                and self.last_record_now_ms is not None
                and self.global_max_ts_ms != NO_WATERMARK
            ):
                since = max(0, self.now_ms - self.last_record_now_ms)  # every input quiet: the wall clock moves it
            return self.global_max_ts_ms + since - self.allowed_lateness_ms
        return NO_WATERMARK if not self.streams else 2**62


_STREAMS = st.sampled_from([f"s{i}" for i in range(6)])
_TS = st.integers(0, 400)
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("observe"), _STREAMS, _TS),
        st.tuples(st.just("observe"), _STREAMS, _TS),  # (twice as likely: the usual call)
        st.tuples(st.just("declare"), _STREAMS, _TS),
        st.tuples(st.just("advance"), _STREAMS, _TS),
        st.tuples(st.just("close"), _STREAMS, st.just(0)),
        st.tuples(st.just("touch"), _STREAMS, st.just(0)),  # an open multi-line entry (#18)
        st.tuples(st.just("set_behind"), _STREAMS, st.integers(0, 1)),  # the driver: unread input, or at its end
        st.tuples(st.just("seen_at"), _STREAMS, st.integers(0, 600)),
        st.tuples(st.just("tick"), st.just(""), st.integers(0, 600)),  # (the wall clock may go back, too)
        st.tuples(st.just("merged"), st.just(""), st.just(0)),  # replay: no idleness by event time from here on
        st.tuples(st.just("ask"), st.just(""), st.just(0)),  # a question between steps (the heaps settle)
    ),
    max_size=60,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_STEPS, idle_timeout_ms=st.integers(-5, 150), max_jump_ms=st.integers(1, 300))
def test_the_same_answers_as_walking_every_stream(
    steps: list[tuple[str, str, int]], idle_timeout_ms: int, max_jump_ms: int
) -> None:
    # the answers are compared after every step; "ask" steps ask twice in a row (a second look must agree)
    fast = Watermarks(7, idle_timeout_ms, max_jump_ms)
    ref = Reference(7, idle_timeout_ms, max_jump_ms)
    for op, stream, value in steps:
        if op in ("observe", "declare", "advance", "touch", "set_behind", "seen_at"):
            getattr(fast, op)(stream, bool(value) if op == "set_behind" else value)
            getattr(ref, op)(stream, value)
        elif op == "close":
            fast.close(stream)
            ref.close(stream)
        elif op == "tick":
            fast.tick(value)
            ref.tick(value)
        elif op == "merged":
            fast.event_time_idle = ref.event_time_idle = False
        else:
            assert fast.current() == ref.current()
        assert fast.current() == ref.current(), (op, stream, value)
        assert fast.idle_streams() == ref.idle_streams(), (op, stream, value)
        assert fast.future_records == ref.future_records
        assert {s: (c.max_ts_ms, c.last_seen_now_ms, c.closed) for s, c in fast.streams.items()} == {
            s: (c.max_ts_ms, c.last_seen_now_ms, c.closed) for s, c in ref.streams.items()
        }


def _per_call(wm: Watermarks, calls: int, step: object) -> float:
    before = wm.examined
    for k in range(calls):
        step(k)  # type: ignore[operator]
        wm.current()
        wm.idle_streams()
    return (wm.examined - before) / calls


def test_replay_of_ten_thousand_files_examines_a_few_clocks_per_question() -> None:
    # a replay's merge: every file declared, the oldest moves on (its next entry, or a record), one at a time;
    # the watermark and the idle inputs are asked after each move, as the join does per failure
    n = 10_000
    wm = Watermarks(5_000, 60_000, 10**9, event_time_idle=False)
    for i in range(n):
        wm.declare(f"access-{i}.log", i)
    wm.current()

    def move(k: int) -> None:
        stream = f"access-{k % n}.log"
        if k % 3:
            wm.observe(stream, n + k)
        else:
            wm.advance(stream, n + k)

    assert _per_call(wm, 30_000, move) <= 3
    assert wm.current() == n + 20_000 - 5_000  # the least clock: access-0.log's, moved longest ago


def test_service_with_ten_thousand_partitions_examines_a_few_clocks_per_question() -> None:
    # the service: wall-clock ticks, a third of the partitions gone quiet, records from the rest
    n = 10_000
    wm = Watermarks(5_000, 30_000, 10**9)
    wm.tick(0)
    for i in range(n):
        wm.observe(f"t[{i}]", 1_000)
    wm.tick(40_000)  # all quiet
    talking = range(0, n, 3)
    for i in talking:
        wm.observe(f"t[{i}]", 2_000)
    assert len(wm.idle_streams()) == n - len(talking)

    def move(k: int) -> None:
        wm.observe(f"t[{talking[k % len(talking)]}]", 2_000 + k)
        if k % 100 == 0:
            wm.tick(40_000 + k)

    assert _per_call(wm, 20_000, move) <= 4
    # what a walk over every stream answers
    live = [c.max_ts_ms for c in wm.streams.values() if not wm.is_idle(c)]
    assert wm.current() == min(live) - 5_000


def test_every_stream_gone_idle_by_event_time_is_found_once() -> None:
    # event-time idleness (no wall clock): 10,000 streams fall behind one that runs ahead; each is looked at a
    # bounded number of times however often the watermark is asked
    n = 10_000
    wm = Watermarks(0, 1_000, 10**9)
    for i in range(n):
        wm.observe(f"s{i}", 0)
    wm.observe("ahead", 5_000)
    for _ in range(100):
        assert wm.current() == 5_000
        assert len(wm.idle_streams()) == n
    assert wm.examined <= 3 * n + 300
