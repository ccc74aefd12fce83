"""Detection: one line, and the majority of a file's first lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from grammars.detect import detect_line, detect_lines

CORPUS = Path(__file__).parents[1] / "corpus"

CASES = [
    ("nginx error", "2016/10/25 14:49:34 [error] 54053#0: *1 open() failed", "nginx_error"),
    ("nginx console", "nginx: [emerg] still could not bind()", "nginx_error"),
    ("php-fpm", "[13-Jan-2017 22:43:56] NOTICE: [pool www] child 11830 started", "php_fpm"),
    ("php-fpm, no timestamp", 'WARNING: [pool www] child 7 said into stderr: "x"', "php_fpm"),
    ("php-fpm, compose prefix", "php_1  | [18-Jul-2018 16:33:42] NOTICE: [pool www] child 8 started", "php_fpm"),
    ("slowlog header", "[15-May-2015 12:50:22]  [pool www] pid 1819", "php_fpm_slowlog"),
    ("slowlog frame", "[0x00007f2d286c2790] replace() /w/Plugin.php:72", "php_fpm_slowlog"),
    ("fpm access", '172.16.6.3 -  18/Jun/2022:07:32:15 +0000 "GET /index.php" 404', "php_fpm_access"),
    (
        "nginx combined",
        '127.0.0.1 - - [19/Feb/2015:15:50:36 -0500] "GET /big.pdf HTTP/1.1" 206 33973115 "-" "x"',
        "nginx_access",
    ),
]


@pytest.mark.parametrize(("description", "line", "log_type"), CASES, ids=[c[0] for c in CASES])
def test_detect_line(description: str, line: str, log_type: str) -> None:
    detected = detect_line(line)
    assert detected is not None, description
    assert detected[0] == log_type


@pytest.mark.parametrize("line", ["", "   ", "PHP message: PHP Warning:  x", "hello", "\x00" * 100])
def test_unrecognised_lines(line: str) -> None:
    assert detect_line(line) is None


def test_detect_lines_takes_the_majority_and_ignores_continuations() -> None:
    lines = [
        '2019/10/30 23:26:34 [error] 1#1: *1 FastCGI sent in stderr: "PHP message: a',
        "PHP message: b",
        'PHP message: c" while reading response header from upstream, client: 1.2.3.4',
        "2019/10/30 23:26:35 [error] 1#1: *2 upstream timed out (110: Connection timed out)",
        "[13-Jan-2017 22:43:56] NOTICE: ready to handle connections",
    ]
    assert detect_lines(lines) == ("nginx_error", None)
    assert detect_lines(["", "junk"]) is None


@pytest.mark.parametrize(
    ("path", "log_type"),
    [
        ("nginx-error/issue-phalcon-cphalcon-15210.log", "nginx_error"),
        ("nginx-error/issue-WWBN-AVideo-989.stderr.log", "nginx_error"),
        ("nginx-error/issue-cypht-org-cypht-1119.compose-prefixed.log", "nginx_error"),
        ("php-fpm/issue-valet-sh-valet-sh-135.log", "php_fpm"),
        ("php-fpm/blog-burn-php-2s-limit.no-timestamp.log", "php_fpm"),
        ("php-fpm/blog-phpergao-slowlog.log", "php_fpm_slowlog"),
        ("php-fpm/issue-trueforge-org-truecharts-5998.docker.log", "php_fpm_access"),
        ("php-fpm/issue-alexjustesen-speedtest-tracker-1787.portal-tsv.log", "php_fpm"),
    ],
)
def test_detect_corpus_files(path: str, log_type: str) -> None:
    detected = detect_lines((CORPUS / path).read_text().splitlines())
    assert detected is not None
    assert detected[0] == log_type


def test_access_formats_come_back_and_the_callers_come_first() -> None:
    from grammars import access

    combined = '127.0.0.1 - - [19/Feb/2015:15:50:36 -0500] "GET /big.pdf HTTP/1.1" 206 33973115 "-" "x"'
    assert detect_line(combined) == ("nginx_access", access.COMBINED)
    tiny = access.compile_log_format("$remote_addr $status", name="tiny")
    detected = detect_line("10.0.0.1 502", [tiny])
    assert detected is not None and detected[1] is tiny


@pytest.mark.parametrize(
    "line",
    [
        "x" * 1_000_000,
        '"' * 100_000,
        "\x00" * 10_000,
        b"\xff\xfe".decode("utf-8", "surrogateescape") * 1000,
        "1.2.3.4 - - [" * 50_000,
    ],
)
def test_hostile_lines_are_detected_cheaply(line: str) -> None:
    import time

    start = time.perf_counter()
    detect_line(line)
    assert time.perf_counter() - start < 2.0
