"""Container streams (issue #19): ``docker logs`` / ``kubectl logs`` of the nginx image interleave the access
log (stdout) and the error log (stderr) in one stream, in either order. Each line is typed on its own: a line
another grammar recognises is never a continuation line, and no line is lost or counted as parsed unread.

The lines are the ones pasted together in aschmelyun/docker-compose-laravel#17 (an nginx container's output,
error entry and access lines of the same second), see tests/corpus/PROVENANCE.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, Record, SourceRef
from processor.pipeline import Pipeline, PipelineSettings
from tests.behaviour.realworld.harness import replay

ERROR = (
    '2020/04/01 05:17:07 [error] 6#6: *12 FastCGI sent in stderr: "Primary script unknown" while reading response '
    'header from upstream, client: 172.19.0.1, server: localhost, request: "GET / HTTP/1.1", upstream: '
    '"fastcgi://172.19.0.2:9000", host: "localhost:7080"'
)
ACCESS = [
    '172.19.0.1 - - [01/Apr/2020:05:17:07 +0000] "GET / HTTP/1.1" 404 27 "-" "Mozilla/5.0 (Macintosh; Intel Mac OS X '
    '10_15_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.149 Safari/537.36"',
    '172.19.0.1 - - [01/Apr/2020:05:17:07 +0000] "GET /favicon.ico HTTP/1.1" 200 0 "http://localhost:7080/" '
    '"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.149 '
    'Safari/537.36"',
]
# a FastCGI stderr entry that really spans lines (a PHP stack trace), then the access line of its request
MULTI = [
    '2020/04/01 05:17:08 [error] 6#6: *14 FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught Error: x',
    "Stack trace:",
    "#0 {main}",
    '  thrown in /var/www/html/index.php on line 3" while reading response header from upstream, client: '
    '172.19.0.1, server: localhost, request: "GET /x HTTP/1.1", upstream: "fastcgi://172.19.0.2:9000", host: '
    '"localhost:7080"',
]
MULTI_ACCESS = '172.19.0.1 - - [01/Apr/2020:05:17:08 +0000] "GET /x HTTP/1.1" 500 5 "-" "curl/7.68.0"'


def _run(lines: list[str], log_type: str | None, by_feed: bool) -> tuple[Pipeline, dict[str, int], list[str]]:
    pipeline = Pipeline(PipelineSettings(emit_events=False))
    records = [Record(text, SourceRef("nginx.container.log", i + 1), log_type, "web-1") for i, text in enumerate(lines)]
    outs = []
    if by_feed:  # the Kafka service and follow
        for record in records:
            outs += [o.value for o in pipeline.feed(record) if o.kind == "dead_letter"]
        outs += [o.value for o in pipeline.flush() if o.kind == "dead_letter"]
        reasons = [dl.reason for dl in outs]
    else:  # replay
        from processor.core.events import DeadLetter

        reasons = [p.reason for p in pipeline.parse_stream(records, "nginx.container.log") if isinstance(p, DeadLetter)]
    return pipeline, pipeline.counters.events_by_type, reasons


STREAMS = [
    ("error entry first", [ERROR, *ACCESS], {NGINX_ERROR: 1, NGINX_ACCESS: 2}),
    ("access lines first", [*ACCESS, ERROR, ACCESS[0]], {NGINX_ERROR: 1, NGINX_ACCESS: 3}),
    (
        "a multi-line entry, then access lines",
        [ACCESS[1], *MULTI, MULTI_ACCESS, *ACCESS],
        {NGINX_ERROR: 1, NGINX_ACCESS: 4},
    ),
]


@pytest.mark.parametrize("by_feed", [False, True], ids=["parse_stream", "feed"])
@pytest.mark.parametrize("typed", [NGINX_ERROR, NGINX_ACCESS, None], ids=["typed error", "typed access", "detected"])
@pytest.mark.parametrize(("description", "lines", "events"), STREAMS, ids=[s[0] for s in STREAMS])
def test_each_line_of_a_mixed_stream_is_its_own_log(
    description: str, lines: list[str], events: dict[str, int], typed: str | None, by_feed: bool
) -> None:
    pipeline, by_type, reasons = _run(lines, typed, by_feed)
    assert reasons == []
    assert {k: v for k, v in by_type.items() if v} == events
    c = pipeline.counters
    assert c.lines_in == c.lines_parsed == len(lines) and c.lines_dead_lettered == 0


@pytest.mark.parametrize(
    "lines",
    [[*ACCESS, *MULTI, MULTI_ACCESS, ERROR, *ACCESS], [ERROR, *ACCESS, *MULTI, MULTI_ACCESS]],
    ids=["access first", "error first"],
)
def test_a_mixed_file_through_replay(tmp_path: Path, lines: list[str]) -> None:
    # the file is typed by its first lines; the other log's lines inside are parsed as that log's
    incidents, dead = replay(tmp_path, {"container.log": "\n".join(lines) + "\n"})
    assert dead == []


def test_binary_junk_after_an_entry_is_dead_lettered_not_parsed() -> None:
    junk = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    pipeline, by_type, reasons = _run([ERROR, junk, ACCESS[0]], NGINX_ERROR, by_feed=False)
    assert reasons == ["binary data after an entry: not a continuation line"]
    c = pipeline.counters
    assert (c.lines_parsed, c.lines_dead_lettered) == (2, 1)


def test_continuation_lines_are_capped() -> None:
    lines = [MULTI[0], *[f"#{i} /var/www/html/vendor/lib.php(12): f()" for i in range(300)], MULTI[-1]]
    pipeline, by_type, reasons = _run(lines, NGINX_ERROR, by_feed=False)
    assert len(reasons) > 0 and all(r.startswith("continuation line past the cap of one entry") for r in reasons)
    c = pipeline.counters
    assert c.lines_in == c.lines_parsed + c.lines_dead_lettered == len(lines)
    assert c.lines_dead_lettered == len(reasons)


def test_continuation_lines_do_not_run_pyparsing(monkeypatch: pytest.MonkeyPatch) -> None:
    # every continuation line is checked against the other logs' grammars: their lowered regexes answer
    # (~4 µs a line), not pyparsing (~30 µs a format), or a stack trace in each error entry would cost that much
    from grammars import lowering

    calls: list[str] = []
    real = lowering.parse_with

    def counting(grammar: object, fast: object, line: str) -> object:
        calls.append(line)
        return real(grammar, fast, line)  # type: ignore[arg-type]

    monkeypatch.setattr(lowering, "parse_with", counting)
    frames = [f"#{i} /var/www/html/vendor/lib.php({i}): f()" for i in range(20)]
    _, _, reasons = _run([MULTI[0], *frames, MULTI[-1]], NGINX_ERROR, by_feed=False)
    assert reasons == [] and not [line for line in calls if line in frames]
