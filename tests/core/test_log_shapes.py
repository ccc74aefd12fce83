"""Log shapes people run (issue #19): each parsed by the grammar its configuration names, no line lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from grammars import access
from grammars.result import ParseError
from processor.core.events import NGINX_ACCESS, DeadLetter, Event, Record, SourceRef
from processor.core.parse import ParseSettings, RecordParser
from tests.behaviour.realworld.harness import replay

# the usual JSON logging setup (escape=json writes nothing, not "-", for a variable without a value)
JSON_FORMAT = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status": "$status",'
    '"body_bytes_sent":"$body_bytes_sent","request_time":"$request_time","upstream_addr":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_response_time":"$upstream_response_time",'
    '"connection":"$connection","http_user_agent":"$http_user_agent"}'
)
JSON_502 = (
    '{"time":"2026-11-24T05:42:02+00:00","remote_addr":"10.0.0.9","request":"GET /a.php?id=7 HTTP/1.1",'
    '"status": "502","body_bytes_sent":"157","request_time":"0.002","upstream_addr":'
    '"unix:/run/php/php8.2-fpm.sock","upstream_status":"502","upstream_response_time":"0.002",'
    '"connection":"3","http_user_agent":"curl/7.88.1"}'
)
JSON_NO_UPSTREAM = (
    '{"time":"2026-11-24T05:42:03+00:00","remote_addr":"10.0.0.9","request":"GET /x HTTP/1.1",'
    '"status": "404","body_bytes_sent":"0","request_time":"0.000","upstream_addr":"",'
    '"upstream_status":"","upstream_response_time":"","connection":"4","http_user_agent":""}'
)
MSEC_FORMAT = '{"ts":$msec,"status":$status,"request":"$request","upstream":"$upstream_addr"}'
MSEC_502 = '{"ts":1795412522.123,"status":502,"request":"GET / HTTP/1.1","upstream":"127.0.0.1:9000"}'


def _parser(**formats: access.AccessFormat) -> RecordParser:
    return RecordParser(ParseSettings(formats=formats))


@pytest.mark.parametrize("access_format", ["json", None], ids=["configured for the file", "detected"])
@pytest.mark.parametrize(
    ("line", "status", "upstream"), [(JSON_502, 502, ["unix:/run/php/php8.2-fpm.sock"]), (JSON_NO_UPSTREAM, 404, None)]
)
def test_escape_json_lines_are_parsed_by_their_log_format(
    access_format: str | None, line: str, status: int, upstream: list[str] | None
) -> None:
    parser = _parser(json=access.compile_log_format(JSON_FORMAT, escape="json", name="json"))
    log_type = NGINX_ACCESS if access_format else None
    event = parser.parse(Record(line, SourceRef("access.log", 1), log_type, "web-1", access_format))
    assert isinstance(event, Event), event
    assert event.fields["status"] == status and event.fields["upstream_addr"] == upstream
    assert event.ts_ms == int(datetime.fromisoformat(line[9:34]).timestamp() * 1000)


def test_escape_json_time_from_msec() -> None:
    parser = _parser(j=access.compile_log_format(MSEC_FORMAT, escape="json", name="j"))
    event = parser.parse(Record(MSEC_502, SourceRef("access.log", 1), NGINX_ACCESS, "web-1", "j"))
    assert isinstance(event, Event), event
    assert event.ts_ms == 1795412522123 and event.fields["status"] == 502


def test_a_json_line_no_format_parses_keeps_its_generic_reading() -> None:
    # goaccess#2338's line (keys named like variables, `@timestamp`): no format configured for it
    line = (
        '{"@timestamp":"2022-06-15T12:47:10+08:00","remote_addr":"100.169.0.123","request":"POST /x/y/z HTTP/1.1",'
        '"status":"200","upstream_addr":"172.0.0.1:8081","upstream_status":"200"}'
    )
    parser = _parser(json=access.compile_log_format(JSON_FORMAT, escape="json", name="json"))
    event = parser.parse(Record(line, SourceRef("access.log", 1), NGINX_ACCESS, "web-1", None))
    assert isinstance(event, Event) and event.fields["status"] == 200


def test_a_json_line_the_configured_format_refuses_reports_its_error() -> None:
    parser = _parser(json=access.compile_log_format(JSON_FORMAT, escape="json", name="json"))
    got = parser.parse(
        Record('{"time":"2026-11-24T05:42:02+00:00","status":"x"}', SourceRef("a", 1), NGINX_ACCESS, "web-1", "json")
    )
    assert isinstance(got, DeadLetter) and got.column is not None and got.column > 1


@pytest.mark.parametrize(
    ("fmt", "line", "agent"),
    [
        (
            access.COMBINED_FORMAT,
            '1.2.3.4 - - [24/Nov/2026:05:42:02 +0000] "GET / HTTP/1.1" 502 157 "-" "Mozilla "quoted" x"',
            'Mozilla "quoted" x',
        ),
        (
            access.COMBINED_FORMAT + " ",
            '1.2.3.4 - - [24/Nov/2026:05:42:02 +0000] "GET / HTTP/1.1" 502 157 "-" "say "hi"" ',
            'say "hi"',
        ),
    ],
)
def test_escape_none_quote_in_the_last_quoted_field(fmt: str, line: str, agent: str) -> None:
    compiled = access.compile_log_format(fmt, escape="none")
    fields = compiled.parse(line)
    assert not isinstance(fields, ParseError), fields.context() if isinstance(fields, ParseError) else ""
    assert fields["http_user_agent"] == agent and fields["status"] == 502
    assert compiled.fast is not None and compiled.fast.parse(line) == fields
    assert fields["time"] == datetime(2026, 11, 24, 5, 42, 2, tzinfo=UTC)


BRACKETED = (
    '$remote_addr - [$time_local] "$request" $status [$upstream_addr] ($upstream_status) '
    "[$upstream_response_time] {$request_time} <$connection>"
)
PREFIX = '10.0.0.1 - [24/Nov/2026:05:42:02 +0000] "GET / HTTP/1.1" '


@pytest.mark.parametrize(
    ("rest", "upstream", "statuses", "times"),
    [
        (
            "502 [unix:/run/php/php8.2-fpm.sock] (502) [0.002] {0.002} <3>",
            ["unix:/run/php/php8.2-fpm.sock"],
            [502],
            [0.002],
        ),
        (
            "502 [10.0.0.2:9000, 10.0.0.3:9000] (502, 502) [0.001, 0.002] {0.003} <3>",
            ["10.0.0.2:9000", "10.0.0.3:9000"],
            [502, 502],
            [0.001, 0.002],
        ),
        ("404 [-] (-) [-] {0.000} <3>", None, None, None),
    ],
)
def test_bracketed_variables_end_at_their_bracket(
    rest: str, upstream: list[str] | None, statuses: list[int] | None, times: list[float] | None
) -> None:
    from grammars import lowering

    compiled = access.compile_log_format(BRACKETED)
    line = PREFIX + rest
    fields = compiled.parse(line)
    assert not isinstance(fields, ParseError), fields.context() if isinstance(fields, ParseError) else ""
    assert (fields["upstream_addr"], fields["upstream_status"], fields["upstream_response_time"]) == (
        upstream,
        statuses,
        times,
    )
    assert fields["connection"] == 3
    assert compiled.fast is not None and compiled.fast.parse(line) == fields
    assert lowering.parse_with(compiled.grammar, None, line) == fields
    scanner = compiled.fast.scanner(("status", "time"))
    assert scanner is None or scanner(line + "\n" + line, 2) == [compiled.fast.probe(("status", "time"))(line)] * 2


@pytest.mark.parametrize("name", ["issue-allinurl-goaccess-2338.json.log", "issue-allinurl-goaccess-359.json.log"])
def test_a_json_access_log_without_its_format_is_recognised(tmp_path: Path, name: str) -> None:
    # keys named like nginx variables (`@timestamp`, `status`, `request`/`uri`): no log_format needed

    text = (Path(__file__).parents[1] / "corpus" / "nginx-access" / name).read_text()
    _, dead = replay(tmp_path, {"access.log": text})
    assert dead == []
