"""Shipper prefixes: recognised and removed (never errors); a line without one is left alone."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammars.prefix import PREFIX_PATTERN, PREFIX_SCAN_PATTERN, has_prefix, strip_prefix

NGINX = '2020/04/26 04:21:34 [error] 6#6: *2 FastCGI sent in stderr: "Primary script unknown"'
FPM = "[18-Jul-2018 16:33:42] NOTICE: [pool www] child 8 started"

# (description, line, container, shipper_time, rest)
CASES = [
    (
        "docker --timestamps (nanoseconds)",
        f"2020-04-26T04:21:34.717765840Z {NGINX}",
        None,
        datetime(2020, 4, 26, 4, 21, 34, 717765, tzinfo=UTC),
        NGINX,
    ),
    ("compose service", f"php_1  | {FPM}", "php_1", None, FPM),
    ("compose v2 name, one space", f"shopsys-framework-php-fpm | {FPM}", "shopsys-framework-php-fpm", None, FPM),
    ("forego", f"nginx.1    | {NGINX}", "nginx.1", None, NGINX),
    (
        "compose + a timestamp column",
        f"client  | 2026-06-28 00:45:44.044 | {NGINX}",
        "client",
        datetime(2026, 6, 28, 0, 45, 44, 44000),
        NGINX,
    ),
    (
        "heroku",
        f"2020-11-16T08:47:16.134129+00:00 app[web.1]: {FPM}",
        "web.1",
        datetime(2020, 11, 16, 8, 47, 16, 134129, tzinfo=UTC),
        FPM,
    ),
    (
        "heroku, empty payload",
        "2020-11-16T08:48:46.367193+00:00 app[web.1]: ",
        "web.1",
        datetime(2020, 11, 16, 8, 48, 46, 367193, tzinfo=UTC),
        "",
    ),
    ("portal TSV export", f"2024/11/12 14:08:57\tstderr\t{FPM}", None, None, FPM),
    (
        "RFC 5424 syslog",
        f"<171>1 2025-11-05T20:47:03.000000+00:00 firewall.lan nginx - - - {NGINX}",
        None,
        datetime(2025, 11, 5, 20, 47, 3, tzinfo=UTC),
        NGINX,
    ),
    ("BSD syslog with facility", f"daemon.debug: Oct 14 14:44:22 horst horst nginx: {NGINX}", None, None, NGINX),
    ("BSD syslog, php-fpm, two spaces", "Jun 11 09:22:42 warmshowers php-fpm:  [WARNING] x", None, None, "[WARNING] x"),
    ("journal, stacked twice", f"host nginx[23141]: host nginx: {NGINX}", None, None, NGINX),
    (
        "SYSLOG tag",
        "[SYSLOG] php-fpm[96]: [ERROR] FPM initialization failed",
        None,
        None,
        "[ERROR] FPM initialization failed",
    ),
    (
        "init script echo",
        "Starting nginx: nginx: [emerg] still could not bind()",
        None,
        None,
        "nginx: [emerg] still could not bind()",
    ),
    ("no prefix: nginx", NGINX, None, None, NGINX),
    ("no prefix: php-fpm", FPM, None, None, FPM),
    (
        "no prefix: console",
        "nginx: [emerg] still could not bind()",
        None,
        None,
        "nginx: [emerg] still could not bind()",
    ),
    (
        "no prefix: fpm access",
        '127.0.0.1 -  19/May/2024:14:09:26 +0000 "GET /index.php" 404',
        None,
        None,
        '127.0.0.1 -  19/May/2024:14:09:26 +0000 "GET /index.php" 404',
    ),
]


@pytest.mark.parametrize(("description", "line", "container", "shipper_time", "rest"), CASES, ids=[c[0] for c in CASES])
def test_strip_prefix(
    description: str, line: str, container: str | None, shipper_time: datetime | None, rest: str
) -> None:
    fields, remainder = strip_prefix(line)
    assert fields == {"container": container, "shipper_time": shipper_time}, description
    assert remainder == rest
    assert has_prefix(line) is (line != rest)


@pytest.mark.parametrize(
    "line",
    [
        "a" * 1_000_000 + " | x",
        "web-1 " + " " * 1_000_000,
        "<1>1 " + "x " * 500_000,
        "\x00" * 1000,
        b"\xff | x".decode("utf-8", "surrogateescape"),
    ],
)
def test_hostile_lines_stay_cheap(line: str) -> None:
    start = time.perf_counter()
    strip_prefix(line)
    assert time.perf_counter() - start < 1.0


_PIECES = st.sampled_from(
    [
        "2020-04-26",
        "T04:21:34",
        ".717Z",
        "+00:00",
        " ",
        "  ",
        "| ",
        " | ",
        "app[web.1]: ",
        "2024/11/12 14:08:57",
        "\t",
        "stderr",
        "<171>",
        "1 ",
        "- ",
        "[x] ",
        "[SYSLOG] ",
        "nginx",
        "php-fpm",
        "php8.2-fpm",
        "[123]",
        ": ",
        "Oct 14 14:44:22 ",
        "daemon.debug: ",
        "Starting ",
        "web_1",
        "10.0.0.1",
        " - - [",
        "a",
        "Z",
        "9",
        ".",
        "-",
        "horst ",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, max_size=10).map("".join))
def test_prefix_pattern_matches_where_has_prefix_does(line: str) -> None:
    assert (re.match(PREFIX_PATTERN, line) is not None) is has_prefix(line)
    assert (re.match(PREFIX_SCAN_PATTERN, line) is not None) is has_prefix(line)


_ADDRESS_PIECES = st.sampled_from(
    [
        "10.0.0.1",
        "2001:db8::1",
        "::1",
        "fe80::a",
        "Abc",
        "ab.cd",
        ":",
        ".",
        "0",
        " ",
        "-",
        " - ",
        " - - [",
        "| ",
        " | ",
        ": ",
        "nginx",
        "php-fpm",
        "[1]: ",
        "Oct 14 ",
        "14:44:22 ",
        "2020-04-26",
        "T04:21:34Z ",
        "/",
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_ADDRESS_PIECES, max_size=10).map("".join))
def test_the_scan_pattern_gives_up_only_where_there_is_no_prefix(line: str) -> None:
    # lines that start as an address and " - " skip the alternatives: the same answer as has_prefix
    assert (re.match(PREFIX_SCAN_PATTERN, line) is not None) is has_prefix(line)


@pytest.mark.parametrize(("description", "line", "container", "shipper_time", "rest"), CASES, ids=[c[0] for c in CASES])
def test_prefix_pattern_on_every_case(
    description: str, line: str, container: str | None, shipper_time: datetime | None, rest: str
) -> None:
    assert (re.match(PREFIX_PATTERN, line) is not None) is has_prefix(line)
    assert (re.match(PREFIX_PATTERN, rest) is not None) is has_prefix(rest)
    assert (re.match(PREFIX_SCAN_PATTERN, line) is not None) is has_prefix(line)
    assert (re.match(PREFIX_SCAN_PATTERN, rest) is not None) is has_prefix(rest)
