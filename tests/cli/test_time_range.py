"""Event times an incident cannot carry (issue #20): `@timestamp` is ISO 8601 with a four-digit year, and a local
time in 9999's last hours is year 10000 in UTC (one in year 1's first hours, year 0). Such lines are dead-lettered
with their reason, on the record-by-record path and on the block scan alike, never written as `10000-01-01T…`."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, DeadLetter, Record, SourceRef
from processor.core.parse import ParseSettings
from processor.core.timefmt import MAX_TS_MS, MIN_TS_MS, OUT_OF_RANGE
from processor.pipeline import Pipeline, PipelineSettings

EDGES = [
    # (why, line, dead-lettered?)
    (
        "9999 at -05:00 is year 10000 in UTC",
        '1.2.3.4 - - [31/Dec/9999:23:59:59 -0500] "GET / HTTP/1.1" 502 0 "-" "-"',
        True,
    ),
    (
        "0001 at +01:00 is year 0 in UTC",
        '1.2.3.4 - - [01/Jan/0001:00:00:01 +0100] "GET / HTTP/1.1" 200 0 "-" "-"',
        True,
    ),
    (
        "the last millisecond of 9999 in UTC is fine",
        '1.2.3.4 - - [31/Dec/9999:23:59:59 +0000] "GET / HTTP/1.1" 502 0 "-" "-"',
        False,
    ),
    (
        "a healthy line past it takes the full path to its dead letter",
        '1.2.3.4 - - [31/Dec/9999:23:00:00 -0200] "GET / HTTP/1.1" 200 0 "-" "-"',
        True,
    ),
]


@pytest.mark.parametrize(("why", "line", "dead"), EDGES, ids=[e[0] for e in EDGES])
def test_times_outside_iso_years_are_dead_lettered(why: str, line: str, dead: bool) -> None:
    for feed in ("record", "lines", "block"):
        pipeline = Pipeline(PipelineSettings())
        if feed == "record":
            outputs = pipeline.feed(Record(line, SourceRef("access.log", 1), NGINX_ACCESS, "web-1"))
        elif feed == "lines":
            fed = pipeline.feed_lines("access.log", 0, NGINX_ACCESS, None, [(1, line, "web-1"), (2, line, "web-1")])
            outputs = [o for _, outs in fed for o in outs]
        else:
            fed = pipeline.feed_block("access.log", 0, NGINX_ACCESS, None, "web-1", [1, 2], f"{line}\n{line}")
            assert fed is not None
            outputs = [o for _, outs in fed for o in outs]
        outputs += pipeline.flush()
        letters = [o.value for o in outputs if isinstance(o.value, DeadLetter)]
        assert bool(letters) == dead, (why, feed)
        assert all(d.reason == OUT_OF_RANGE for d in letters)
        for o in outputs:
            if o.kind == "incident":
                assert o.value["@timestamp"][:4].isdigit() and o.value["@timestamp"][4] == "-"
        c = pipeline.counters
        assert c.lines_in == c.lines_parsed + c.lines_dead_lettered


def test_an_error_entry_past_9999_in_its_zone() -> None:
    line = (
        "9999/12/31 23:59:59 [error] 1#1: *1 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", '
        'upstream: "fastcgi://127.0.0.1:9000", host: "x"'
    )
    pipeline = Pipeline(PipelineSettings(parse=ParseSettings(timezone=ZoneInfo("America/New_York"))))
    out = pipeline.feed(Record(line, SourceRef("error.log", 1), NGINX_ERROR, "web-1")) + pipeline.flush()
    assert [o.value.reason for o in out if isinstance(o.value, DeadLetter)] == [OUT_OF_RANGE]
    assert MIN_TS_MS < 0 < MAX_TS_MS
