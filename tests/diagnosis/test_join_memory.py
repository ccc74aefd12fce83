"""Bounded state: memory follows the records inside the window, not the length of the input.

The default profile feeds 300k events; ``-m slow`` feeds the 10 million of the issue.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Event, SourceRef
from processor.diagnosis.join import DiagnosisJoin, JoinSettings
from processor.diagnosis.topology import Topology

T0_MS = 1_795_000_000_000


def _events(n: int):  # type: ignore[no-untyped-def]
    """~1% failures with their error and FPM lines, the rest healthy, 100 lines/s of event time."""
    for i in range(n):
        ts = T0_MS + i * 10
        if i % 100 == 0:
            req = f"GET /slow.php?id={i} HTTP/1.1"
            yield Event(
                NGINX_ERROR,
                "web-1",
                ts,
                {
                    "kind": "recv_failed",
                    "errno": 104,
                    "client": "10.0.0.1",
                    "request": req,
                    "uri": f"/slow.php?id={i}",
                    "action": "reading response header from upstream",
                    "upstream": "fastcgi://unix:/run/php/slow.sock:",
                },
                SourceRef("error.log", i),
                f"e{i}",
            )
            yield Event(
                PHP_FPM,
                "web-1",
                ts,
                {"kind": "timed_out", "pool": "slow", "child_pid": i, "uri": f"/slow.php?id={i}"},
                SourceRef("php-fpm.log", i),
                f"f{i}",
            )
            status = 502
        else:
            req, status = f"GET /ok?id={i} HTTP/1.1", 200
        yield Event(
            NGINX_ACCESS,
            "web-1",
            ts,
            {"remote_addr": "10.0.0.1", "request": req, "status": status, "uri": req.split()[1]},
            SourceRef("access.log", i),
            f"a{i}",
        )


def _peak_after(n: int) -> tuple[int, int, int]:
    join = DiagnosisJoin(Topology(), JoinSettings())
    gc.collect()
    tracemalloc.start()
    incidents = 0
    checkpoint = 0
    for k, ev in enumerate(_events(n)):
        incidents += len(join.process(ev))
        if k == n // 5:
            checkpoint = tracemalloc.get_traced_memory()[0]
    end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    incidents += len(join.flush())
    return checkpoint, end, incidents


def _check(n: int) -> None:
    at_fifth, at_end, incidents = _peak_after(n)
    assert incidents == (n + 99) // 100
    # five times the input, the same memory (give or take the window's jitter)
    assert at_end < at_fifth * 1.5 + 256 * 1024, (at_fifth, at_end)


def test_memory_is_flat_300k() -> None:
    _check(300_000)


@pytest.mark.slow
def test_memory_is_flat_10m() -> None:
    _check(10_000_000)


def _outage(seconds: int, per_second: int):  # type: ignore[no-untyped-def]
    """Every request fails: each an FPM timeout with its child's SIGTERM exit, and NGINX's reset; a
    `max_children` warning every 10 s (the shapes of tests/diagnosis/outage_logs.py, as events)."""
    n = 0
    for s in range(seconds):
        ts = T0_MS + s * 1000
        if s % 10 == 0:
            yield Event(PHP_FPM, "web-1", ts, {"kind": "max_children", "pool": "www"}, SourceRef("fpm", n), f"m{n}")
        for _ in range(per_second):
            n += 1
            uri = f"/slow.php?id={n}"
            req = f"GET {uri} HTTP/1.1"
            pid = 1000 + n % 50
            for fields in (
                {"kind": "timed_out", "pool": "www", "child_pid": pid, "uri": uri},
                {"kind": "exited_signal", "pool": "www", "child_pid": pid, "signal": 15},
            ):
                yield Event(PHP_FPM, "web-1", ts, fields, SourceRef("fpm", n), f"f{n}-{fields['kind']}")
            yield Event(
                NGINX_ERROR,
                "web-1",
                ts,
                {"kind": "recv_failed", "errno": 104, "client": "10.0.0.1", "request": req, "uri": uri},
                SourceRef("error", n),
                f"e{n}",
            )
            yield Event(
                NGINX_ACCESS,
                "web-1",
                ts,
                {"remote_addr": "10.0.0.1", "request": req, "status": 502, "uri": uri},
                SourceRef("access", n),
                f"a{n}",
            )


def test_an_outage_holds_timeouts_for_the_window_and_warnings_for_the_lookback() -> None:
    """Memory in an outage (#23): timeouts and exits are held while an open window may use them
    (``candidate_retain_ms``), `max_children` warnings for the saturation lookback; and every failure still
    gets its timeout."""
    settings = JoinSettings()
    join = DiagnosisJoin(Topology(), settings)
    per_second = 50
    causes: dict[str, int] = {}
    most = 0
    for ev in _outage(180, per_second):
        for incident in join.process(ev):
            cause = incident["badgateway"]["cause"]
            causes[cause] = causes.get(cause, 0) + 1
        most = max(most, len(join._hosts["web-1"].evidence))
    held = list(join._hosts["web-1"].evidence)
    warnings = [ev for ev in held if ev.fields["kind"] == "max_children"]
    lines = len(held) - len(warnings)
    # two lines a request, for the retained seconds and the watermark's lag (lateness, a second of pruning)
    lag_s = (settings.candidate_retain_ms + settings.allowed_lateness_ms) // 1000 + 2
    assert lines <= 2 * per_second * lag_s, lines
    assert most <= 2 * per_second * lag_s + 10, most
    # the lookback's warnings are all there (one every 10 s for 60 s, and the watermark's lag)
    lookback_s = (settings.release_ms + settings.saturation_lookback_ms + settings.allowed_lateness_ms) // 1000
    assert len(warnings) >= settings.saturation_lookback_ms // 10_000, len(warnings)
    assert len(warnings) <= lookback_s // 10 + 1, len(warnings)
    for incident in join.flush():
        cause = incident["badgateway"]["cause"]
        causes[cause] = causes.get(cause, 0) + 1
    assert causes == {"fpm_timeout": 180 * per_second}


def test_a_recycled_child_is_pruned_without_error() -> None:
    """``child N exited with code 0`` (a child recycled by pm.max_requests, or stopped by the dynamic manager)
    is held as evidence of nothing; pruning it a minute later raised ValueError and stopped the processor."""
    join = DiagnosisJoin(Topology(), JoinSettings())
    exit0 = {"kind": "exited_code", "pool": "www", "child_pid": 42, "exit_code": 0, "after_s": 3600.1}
    join.process(Event(PHP_FPM, "web-1", T0_MS, exit0, SourceRef("fpm", 1), "x"))
    assert len(join._hosts["web-1"].evidence) == 1
    for i in range(1, 200):
        ts = T0_MS + i * 1000
        fields = {"remote_addr": "10.0.0.1", "request": "GET / HTTP/1.1", "status": 200, "uri": "/"}
        join.process(Event(NGINX_ACCESS, "web-1", ts, fields, SourceRef("access", i), f"a{i}"))
        join.process(Event(PHP_FPM, "web-1", ts, {"kind": "running"}, SourceRef("fpm", i + 1), f"r{i}"))
    assert len(join._hosts["web-1"].evidence) == 0
    assert join.state_size == 0
