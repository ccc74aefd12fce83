"""The evidence index answers exactly what a scan of every held line would (issue #23).

The reference below is the ranking written as a plain scan, as the join did before the index: each candidate
scored with ``uri_score``, ranked (same query, closest second, URI fit, timeout first, closest millisecond,
earliest line of its log). Hypothesis draws hosts' worth of timeouts, exits and failures, consumes the chosen lines
as the join does, and checks each answer, including ties and pools unknown to the configs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import NGINX_ACCESS, PHP_FPM, Event, SourceRef
from processor.core.sorted_entries import SmallSorted, grown
from processor.diagnosis.causes import best_evidence, uri_score
from processor.diagnosis.evidence import TIMEOUT_EXIT_MS, EvidenceIndex, log_position
from processor.diagnosis.state import Pending, Waiting

URIS = [
    None,
    "/",
    "/index.php",
    "/index.php?id=1",
    "/index.php?id=2",
    "/a.php",
    "/a.php?id=1",
    "/b.php?id=2",
    "/?id=1",
    "/x",
    "/x?q=3",
]
POOLS = ["www", "slow"]
WINDOW_MS = 5_000
# whole and half seconds, as NGINX and PHP-FPM write them: many lines tie in time
TIMES = st.integers(0, 48).map(lambda half_s: half_s * 500)


def _event(seq: int, kind: str, pool: str, pid: int, ts_ms: int, uri: str | None, signal: int | None) -> Event:
    fields: dict[str, object] = {"kind": kind, "pool": pool, "child_pid": pid}
    if uri is not None and kind == "timed_out":
        fields["uri"] = uri
    if kind == "exited_signal":
        fields["signal"] = signal
    return Event(PHP_FPM, "web-1", ts_ms, fields, SourceRef("php-fpm.log", seq), f"line {seq:03d} {kind}")


def _follows(exit_: Event, held: list[Event]) -> bool:
    """A SIGTERM exit ends a timeout of its child logged before it: in an earlier second (up to
    TIMEOUT_EXIT_MS), or in its own second and an earlier line (php-fpm logs the timeout, then reaps the child)."""
    return exit_.fields.get("signal") == 15 and any(
        t.fields["kind"] == "timed_out"
        and t.fields["pool"] == exit_.fields["pool"]
        and t.fields["child_pid"] == exit_.fields["child_pid"]
        and 0 <= exit_.ts_ms - t.ts_ms <= TIMEOUT_EXIT_MS
        and (t.ts_ms, t.source.offset) < (exit_.ts_ms, exit_.source.offset)
        for t in held
    )


def _reference(held: list[Event], used: set[int], uri: str | None, pool: str | None, t_ms: int) -> Event | None:
    ranked = []
    for e in held:
        if id(e) in used or abs(e.ts_ms - t_ms) > WINDOW_MS:
            continue
        if e.fields["kind"] != "timed_out" and _follows(e, held):
            continue
        if pool is not None and e.fields["pool"] != pool:
            continue
        score = uri_score(e.fields.get("uri"), uri)
        if score == 0:
            continue
        dt = abs(e.ts_ms - t_ms)
        # best: same query, closest second, URI fit, a timeout, closest ms, earliest in its log
        ranked.append(((score < 2, dt // 1000, -score, e.fields["kind"] != "timed_out", dt, e.source.offset), e))
    return min(ranked, key=lambda r: r[0])[1] if ranked else None


lines = st.lists(
    st.tuples(
        st.sampled_from(["timed_out", "exited_signal", "exited_signal"]),
        st.sampled_from(POOLS),
        st.integers(1, 6),
        TIMES,
        st.sampled_from(URIS),
        st.sampled_from([15, 11, 9]),
    ),
    max_size=40,
)
failures = st.lists(st.tuples(st.sampled_from(URIS), st.sampled_from([None, *POOLS]), TIMES), min_size=1, max_size=15)


@settings(max_examples=400, deadline=None)
@given(lines, failures)
def test_index_answers_as_a_scan_of_every_line(
    drawn: list[tuple[str, str, int, int, str | None, int]], asked: list[tuple[str | None, str | None, int]]
) -> None:
    index = EvidenceIndex()
    held = [_event(i, *line) for i, line in enumerate(drawn)]
    for e in held:
        index.add(e)
    used: set[int] = set()
    for uri, pool, t_ms in asked:
        got = best_evidence(index, uri, pool, t_ms, WINDOW_MS)
        want = _reference(held, used, uri, pool, t_ms)
        assert (got.raw if got else None) == (want.raw if want else None), (uri, pool, t_ms)
        if got is not None:  # explained: it explains nothing else (as the join consumes it)
            used.add(id(got))
            index.consume(got)


def test_small_sorted_grows_into_a_sorted_list() -> None:
    entries = SmallSorted()
    for x in [5, 1, 3, 3, 9]:
        entries.add((x,))
    assert list(entries) == [(1,), (3,), (3,), (5,), (9,)]
    entries.remove((3,))
    assert list(entries) == [(1,), (3,), (5,), (9,)] and entries.bisect_left((4,)) == 2
    big = SmallSorted((i,) for i in range(600))
    assert type(grown(big)) is not SmallSorted and list(grown(big)) == list(big)
    assert grown(entries) is entries


def _pending(i: int, ts_ms: int, cid: int | None, stream: str, status: int) -> Pending:
    fields = {"remote_addr": "10.0.0.1", "request": "GET / HTTP/1.1", "status": status, "connection": cid}
    event = Event(NGINX_ACCESS, "web-1", ts_ms, fields, SourceRef(stream, i), f"line {i}")
    return Pending(event, True, ("10.0.0.1", "GET / HTTP/1.1"), cid, f"bgw-{(i * 7919) % 1000:03d}-{i}", False)


def _reference_partner(waiting: list[Pending], p: Pending) -> Pending | None:
    """The join's partner rule as a scan: own connection first, never another connection, nearest, the earlier
    line of its log, smaller id."""
    best, chosen = None, None
    for q in waiting:
        if p.cid is not None and q.cid is not None and p.cid != q.cid:
            continue
        dt = abs(q.event.ts_ms - p.event.ts_ms)
        if dt > 2_000:
            continue
        rank = (0 if p.cid is not None and p.cid == q.cid else 1, dt, log_position(q.event), q.item_id)
        if best is None or rank < best:
            best, chosen = rank, q
    return chosen


entries = st.lists(
    st.tuples(
        TIMES, st.sampled_from([None, None, 1, 2, 3]), st.sampled_from(["a.log", "b.log"]), st.sampled_from([502, 504])
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(entries, entries, st.lists(st.integers(0, 29), max_size=10))
def test_waiting_pairs_as_a_scan_of_every_entry(
    held: list[tuple[int, int | None, str, int]], asked: list[tuple[int, int | None, str, int]], removed: list[int]
) -> None:
    waiting = Waiting()
    pendings = [_pending(i, *entry) for i, entry in enumerate(held)]
    for p in pendings:
        waiting.add(p)
    for i in sorted(set(removed), reverse=True):
        if i < len(pendings):
            waiting.remove(pendings.pop(i))
    assert len(waiting) == len(pendings)
    for j, entry in enumerate(asked):
        p = _pending(100 + j, *entry)
        assert waiting.partner_for(p, 2_000) is _reference_partner(pendings, p)
        # the same request in the other access log: the nearest of each other stream, same status
        found = waiting.same_request_elsewhere(p.event, 1_000)
        for q in found:
            assert q.event.source.stream != p.event.source.stream
            assert q.event.fields["status"] == p.event.fields["status"]
            assert abs(q.event.ts_ms - p.event.ts_ms) <= 1_000
        assert len({q.event.source.stream for q in found}) == len(found)
