"""PHP-FPM pool access log, default ``%R - %u %t "%m %r" %s``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from grammars.fpm_access import parse_fpm_access_line
from grammars.prefix import strip_prefix
from grammars.result import ParseError

CORPUS = Path(__file__).parents[1] / "corpus" / "php-fpm"

CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "default format, no user",
        '172.16.6.3 -  18/Jun/2022:07:32:15 +0000 "GET /index.php" 404',
        {
            "remote_addr": "172.16.6.3",
            "remote_user": None,
            "method": "GET",
            "uri": "/index.php",
            "status": 404,
            "time": datetime(2022, 6, 18, 7, 32, 15, tzinfo=UTC),
        },
    ),
    (
        "a user and an offset",
        '10.0.0.1 - alice 24/Nov/2026:05:11:13 -0130 "POST /api.php" 200',
        {
            "remote_user": "alice",
            "method": "POST",
            "time": datetime(2026, 11, 24, 5, 11, 13, tzinfo=timezone(-timedelta(hours=1, minutes=30))),
        },
    ),
    ("redacted address", '<ip> -  17/Jul/2019:16:26:14 +0000 "GET /index.php" 500', {"remote_addr": "<ip>"}),
    ("quote inside the URI", '::1 -  17/Jul/2019:16:26:14 +0000 "GET /a"b.php" 200', {"uri": '/a"b.php'}),
]


@pytest.mark.parametrize(("description", "line", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(description: str, line: str, expected: dict[str, Any]) -> None:
    fields = parse_fpm_access_line(line)
    assert not isinstance(fields, ParseError), f"{description}: {fields}"
    assert {key: fields[key] for key in expected} == expected
    assert set(fields) == {"remote_addr", "remote_user", "time", "method", "uri", "status"}


FAILURES = [
    ("empty", "", 1),
    ("nginx combined line", '1.2.3.4 - - [18/Jun/2022:07:32:15 +0000] "GET / HTTP/1.1" 200 5 "-" "-"', 13),
    ("impossible month", '1.2.3.4 -  18/Jux/2022:07:32:15 +0000 "GET /" 200', 12),
    ("status missing", '1.2.3.4 -  18/Jun/2022:07:32:15 +0000 "GET /"', 46),
]


@pytest.mark.parametrize(("description", "line", "column"), FAILURES, ids=[f[0] for f in FAILURES])
def test_fails_at(description: str, line: str, column: int) -> None:
    result = parse_fpm_access_line(line)
    assert isinstance(result, ParseError), description
    assert result.column == column


@pytest.mark.parametrize(
    "line",
    [
        '1.2.3.4 -  18/Jun/2022:07:32:15 +0000 "GET /' + '"' * 100_000 + '" 200',
        "x" * 1_000_000,
        b'\xff -  18/Jun/2022:07:32:15 +0000 "GET /\x00" 200'.decode("utf-8", "surrogateescape"),
    ],
)
def test_hostile_lines_never_raise(line: str) -> None:
    start = time.perf_counter()
    assert isinstance(parse_fpm_access_line(line), (dict, ParseError))
    assert time.perf_counter() - start < 2.0


def test_corpus_access_files_parse() -> None:
    count = 0
    for path in sorted(CORPUS.glob("*.fpm-access.log")):
        for raw in path.read_text().splitlines():
            _, line = strip_prefix(raw)
            assert not isinstance(parse_fpm_access_line(line), ParseError), raw
            count += 1
    assert count == 5
