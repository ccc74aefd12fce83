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
