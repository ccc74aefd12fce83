"""PHP-FPM master-log grammar: a table per message kind, cut and hostile lines, the whole corpus."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from grammars.detect import detect_line
from grammars.fpm import parse_fpm_line
from grammars.fpm_access import parse_fpm_access_line
from grammars.prefix import strip_prefix
from grammars.result import ParseError
from grammars.slowlog import is_entry_start as is_slowlog_start
from grammars.slowlog import parse_slowlog_entry

CORPUS = Path(__file__).parents[1] / "corpus" / "php-fpm"

TIMED_OUT = (
    "[13-Jan-2017 22:46:23] WARNING: [pool www] child 11830, script '/var/www/html/wp-admin/admin-ajax.php' "
    '(request: "GET /wp-admin/admin-ajax.php?action=x") execution timed out (12.348141 sec), terminating'
)

# (description, line, expected subset of the fields)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "execution timed out with the request",
        TIMED_OUT,
        {
            "time": datetime(2017, 1, 13, 22, 46, 23),
            "level": "WARNING",
            "pool": "www",
            "child_pid": 11830,
            "script": "/var/www/html/wp-admin/admin-ajax.php",
            "request": "GET /wp-admin/admin-ajax.php?action=x",
            "method": "GET",
            "uri": "/wp-admin/admin-ajax.php?action=x",
            "duration_s": 12.348141,
            "kind": "timed_out",
            "truncated": False,
            "pid": None,
            "function": None,
            "source_line": None,
        },
    ),
    (
        "execution timed out, older PHP without the request",
        "[21-Oct-2014 16:51:54] WARNING: [pool o1] child 27367, script '/data/index.php' execution timed out "
        "(30.000105 sec), terminating",
        {"kind": "timed_out", "request": None, "method": None, "uri": None, "script": "/data/index.php"},
    ),
    (
        "executing too slow",
        "[11-Jul-2022 05:34:02] WARNING: [pool www] child 155, script '/var/www/slowlog.php' (request: \"GET "
        '/error_handling/slowlog.php") executing too slow (1.176006 sec), logging',
        {"kind": "too_slow", "duration_s": 1.176006, "uri": "/error_handling/slowlog.php"},
    ),
    (
        "exited on SIGTERM after a timeout",
        "[13-Jan-2017 22:46:23] WARNING: [pool www] child 11830 exited on signal 15 (SIGTERM) after 146.629210 "
        "seconds from start",
        {"kind": "exited_signal", "signal": 15, "signal_name": "SIGTERM", "core_dumped": False, "after_s": 146.62921},
    ),
    (
        "exited on SIGSEGV with a core",
        "[28-Aug-2026 15:20:17] WARNING: [pool www] child 178 exited on signal 11 (SIGSEGV - core dumped) after "
        "4.769535 seconds from start",
        {"kind": "exited_signal", "signal": 11, "signal_name": "SIGSEGV", "core_dumped": True},
    ),
    (
        "exited with a code",
        "[24-Nov-2026 05:42:00] NOTICE: [pool www] child 42 exited with code 0 after 0.001 seconds from start",
        {"kind": "exited_code", "exit_code": 0, "signal": None, "after_s": 0.001, "core_dumped": None},
    ),
    (
        "exited on a signal without a name",
        "[24-Nov-2026 05:42:00] WARNING: [pool www] child 42 exited on signal 64 () after 0.5 seconds from start",
        {"kind": "exited_signal", "signal": 64, "signal_name": None, "core_dumped": False},
    ),
    (
        "child started",
        "[13-Jan-2017 22:43:56] NOTICE: [pool www] child 11830 started",
        {"kind": "child_started", "child_pid": 11830, "pool": "www"},
    ),
    (
        "max_children",
        "[03-May-2018 10:57:16] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
        {"kind": "max_children", "max_children": 5},
    ),
    (
        "ondemand max_children",
        "[26-Sep-2021 05:05:58] WARNING: [pool ***removed***.com] server reached "
        "max_children setting (8), consider raising it",
        {"kind": "max_children", "max_children": 8, "pool": "***removed***.com"},
    ),
    (
        "seems busy",
        "[29-Aug-2015 11:48:52] WARNING: [pool www] seems busy (you may need to increase "
        "pm.start_servers, or pm.min/max_spare_servers), spawning 16 children, there are 0 idle, and 85 total "
        "children",
        {"kind": "seems_busy", "pool": "www"},
    ),
    (
        "bind failed, quoted unix socket",
        "[12-Oct-2022 20:56:13] ERROR: unable to bind listening socket for "
        "address '/run/php-fpm/php-fpm.sock': No such file or directory (2)",
        {"kind": "bind_failed", "address": "/run/php-fpm/php-fpm.sock", "level": "ERROR"},
    ),
    (
        "bind failed, older unquoted address",
        "[07-Sep-2014 21:12:26] ERROR: unable to bind listening socket for "
        "address 127.0.0.1:9000: Address already in use (98)",
        {"kind": "bind_failed", "address": "127.0.0.1:9000"},
    ),
    (
        "said into stderr",
        '[21-Jun-2017 18:40:00] WARNING: [pool www] child 27290 said into stderr: "NOTICE: PHP '
        'message: PHP Parse error:  syntax error in /var/www/test.php on line 2"',
        {
            "kind": "said",
            "stream": "stderr",
            "child_pid": 27290,
            "output": "NOTICE: PHP message: PHP Parse error:  syntax error in /var/www/test.php on line 2",
        },
    ),
    (
        "said into stdout, pipe closed",
        '[24-Nov-2026 05:42:00] WARNING: [pool www] child 7 said into stdout: "hello", pipe is closed',
        {"kind": "said", "stream": "stdout", "output": "hello"},
    ),
    (
        "said with nested quotes and JSON",
        "[16-Jul-2018 13:48:47] WARNING: [pool www] child 10 said into stderr: "
        '"event "kernel.terminate" {"event":"kernel.terminate"} []"',
        {"output": 'event "kernel.terminate" {"event":"kernel.terminate"} []'},
    ),
    ("fpm is running", "[14-Jan-2017 17:59:51] NOTICE: fpm is running, pid 8206", {"kind": "running", "pid": 8206}),
    ("ready", "[14-Jan-2017 17:59:51] NOTICE: ready to handle connections", {"kind": "ready", "pool": None}),
    (
        "terminating is not a cut line",
        "[25-Oct-2021 13:18:54] NOTICE: Terminating ...",
        {"kind": "terminating", "truncated": False},
    ),
    ("exiting", "[25-Oct-2021 13:18:56] NOTICE: exiting, bye-bye!", {"kind": "exiting"}),
    (
        "reloading",
        '[27-Mar-2020 04:15:26] NOTICE: reloading: execvp("/usr/sbin/php-fpm7.4", {"--nodaemonize"})',
        {"kind": "reloading"},
    ),
    (
        "other message, still parsed",
        "[11-Jul-2022 05:34:02] NOTICE: child 155 stopped for tracing",
        {"kind": "other", "child_pid": 155, "message": "child 155 stopped for tracing"},
    ),
    (
        "debug prefix and microseconds",
        "[28-May-2018 10:31:16.042398] DEBUG: pid 1, fpm_children_make(), line 421: [pool www] child 10 started",
        {
            "time": datetime(2018, 5, 28, 10, 31, 16, 42398),
            "level": "DEBUG",
            "pid": 1,
            "function": "fpm_children_make()",
            "source_line": 421,
            "kind": "child_started",
            "child_pid": 10,
        },
    ),
    (
        "debug-prefixed timeout",
        "[24-Nov-2026 05:42:00.636653] WARNING: pid 15649, fpm_request_check_timed_out(), "
        "line 272: [pool docs] child 15650, script '/srv/a.php' (request: \"POST /a.php\") execution timed out "
        "(25.755070 sec), terminating",
        {"pid": 15649, "pool": "docs", "kind": "timed_out", "method": "POST", "duration_s": 25.75507},
    ),
    (
        "syslog form: [LEVEL] and function without pid",
        " [WARNING] fpm_children_bury(), line 252: [pool www] child "
        "14226 exited on signal 15 (SIGTERM) after 7189.199345 seconds from start".lstrip(),
        {"level": "WARNING", "function": "fpm_children_bury()", "pid": None, "kind": "exited_signal"},
    ),
    (
        "no timestamp",
        "WARNING: [pool web] server reached max_children setting (2), consider raising it",
        {"time": None, "kind": "max_children"},
    ),
    (
        "-tt dump with two spaces",
        "[18-Jan-2024 18:46:49] NOTICE:  pm.max_children = 40",
        {"message": "pm.max_children = 40", "kind": "other"},
    ),
    (
        "cut at log_limit inside the request",
        "[24-Nov-2026 05:42:00] WARNING: [pool www] child 5, script "
        "'/srv/x.php' (request: \"GET /x.php?q=" + "a" * 900 + "...",
        {"truncated": True, "pool": "www", "child_pid": 5, "kind": "other", "script": None},
    ),
    (
        "cut at log_limit inside worker output",
        '[24-Nov-2026 05:42:00] WARNING: [pool www] child 5 said into stderr: "' + "b" * 1000 + '..."',
        {"truncated": True, "kind": "said"},
    ),
]


@pytest.mark.parametrize(("description", "line", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(description: str, line: str, expected: dict[str, Any]) -> None:
    fields = parse_fpm_line(line)
    assert not isinstance(fields, ParseError), f"{description}: {fields}"
    assert {key: fields[key] for key in expected} == expected


def test_every_contract_field_is_present() -> None:
    fields = parse_fpm_line(TIMED_OUT)
    assert not isinstance(fields, ParseError)
    assert set(fields) == set(
        "time level pid function source_line pool child_pid script request method uri duration_s signal "
        "signal_name core_dumped exit_code after_s max_children address stream output message truncated kind".split()
    )


# (description, line, 1-based column where parsing fails)
FAILURES = [
    ("empty line", "", 1),
    ("no level", "[13-Jan-2017 22:43:56] [pool www] child 1 started", 25),
    ("unknown level", "[13-Jan-2017 22:43:56] INFO: ready to handle connections", 24),
    ("impossible month", "[13-Foo-2017 22:43:56] NOTICE: ready to handle connections", 2),
    ("a slowlog header is not a master-log line", "[15-May-2015 12:50:22]  [pool www] pid 1819", 24),
]


@pytest.mark.parametrize(("description", "line", "column"), FAILURES, ids=[f[0] for f in FAILURES])
def test_fails_at(description: str, line: str, column: int) -> None:
    result = parse_fpm_line(line)
    assert isinstance(result, ParseError), description
    assert result.column == column


HOSTILE = [
    ("1 MB message", "[13-Jan-2017 22:43:56] NOTICE: " + "x" * 1_000_000),
    (
        "100k quotes in worker output",
        '[13-Jan-2017 22:43:56] WARNING: [pool www] child 1 said into stderr: "' + '"' * 100_000,
    ),
    ("100k pool brackets", "WARNING: " + "[pool " * 100_000),
    ("NUL bytes", "[13-Jan-2017 22:43:56] NOTICE: \x00\x00 [pool \x00] child 1 started"),
    (
        "invalid UTF-8",
        b"[13-Jan-2017 22:43:56] NOTICE: [pool \xff\xfe] child 1 started".decode("utf-8", "surrogateescape"),
    ),
    ("1 MB of garbage", "\x7f" * 1_000_000),
    ("embedded newline", "[13-Jan-2017 22:43:56] NOTICE: a\nb"),
]


@pytest.mark.parametrize(("description", "line"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_lines_never_raise_and_stay_cheap(description: str, line: str) -> None:
    start = time.perf_counter()
    result = parse_fpm_line(line)
    assert time.perf_counter() - start < 2.0, description
    assert isinstance(result, (dict, ParseError))


# --- the whole corpus: every file of tests/corpus/php-fpm, each line by the parser its type needs ----

# Corpus lines that are not whole log entries and must fail, each with the reason. Empty: every line
# parses. Odd ones that parse on purpose are pinned in test_odd_corpus_lines.
ALLOWED_FAILURES: dict[tuple[str, str], str] = {}


def _corpus_records() -> list[tuple[str, int, str, str]]:
    """(file, line number, detected type, text) — slowlog entries joined into one record."""
    records: list[tuple[str, int, str, str]] = []
    for path in sorted(CORPUS.glob("*.log")):
        slowlog: list[str] = []
        first = 0
        for number, raw in enumerate(path.read_bytes().decode("utf-8", "surrogateescape").split("\n"), start=1):
            _, line = strip_prefix(raw)
            ends_entry = not line.strip() or is_slowlog_start(line) or detect_line(line) != ("php_fpm_slowlog", None)
            if slowlog and ends_entry:
                records.append((path.name, first, "php_fpm_slowlog", "\n".join(slowlog)))
                slowlog = []
            if not line.strip():
                continue
            detected = detect_line(line)
            kind = detected[0] if detected else "unknown"
            if kind == "php_fpm_slowlog":
                first = first if slowlog else number
                slowlog.append(line)
            else:
                records.append((path.name, number, kind, line))
        if slowlog:
            records.append((path.name, first, "php_fpm_slowlog", "\n".join(slowlog)))
    return records


RECORDS = _corpus_records()
PARSERS = {"php_fpm": parse_fpm_line, "php_fpm_slowlog": parse_slowlog_entry, "php_fpm_access": parse_fpm_access_line}


def test_the_whole_corpus_parses() -> None:
    failed = {}
    for name, number, kind, text in RECORDS:
        parse = PARSERS.get(kind)
        result = parse(text) if parse is not None else ParseError(f"detected as {kind}", 1, text)
        if isinstance(result, ParseError):
            failed[(name, text)] = f"{name}:{number}: {result}: {text[:80]!r}"
    assert set(failed) == set(ALLOWED_FAILURES), "\n".join(failed.values())
    kinds = {kind for _, _, kind, _ in RECORDS}
    assert kinds == {"php_fpm", "php_fpm_slowlog", "php_fpm_access"}


def test_corpus_kinds_are_recognised() -> None:
    kinds = set()
    for _, _, kind, text in RECORDS:
        if kind == "php_fpm":
            fields = parse_fpm_line(text)
            assert not isinstance(fields, ParseError)
            kinds.add(fields["kind"])
    assert kinds >= {
        "timed_out",
        "too_slow",
        "exited_signal",
        "child_started",
        "max_children",
        "seems_busy",
        "bind_failed",
        "said",
        "running",
        "ready",
        "terminating",
        "exiting",
        "reloading",
        "other",
    }


def test_odd_corpus_lines() -> None:
    # issue-ellite-Wallos-63.log line 2: four entries pasted without newlines; the first one's message
    # holds the rest (nothing is dropped, and the kind is still the first entry's)
    line = (CORPUS / "issue-ellite-Wallos-63.log").read_text().splitlines()[1]
    fields = parse_fpm_line(line)
    assert not isinstance(fields, ParseError)
    assert fields["kind"] == "seems_busy"
    assert fields["message"].count("seems busy") == 4
    # issue-warmshowers-Warmshowers.org-562.syslog.log: syslog form, level in brackets, no pid
    _, line = strip_prefix((CORPUS / "issue-warmshowers-Warmshowers.org-562.syslog.log").read_text().strip())
    fields = parse_fpm_line(line)
    assert not isinstance(fields, ParseError)
    assert (fields["level"], fields["function"], fields["source_line"], fields["signal_name"]) == (
        "WARNING",
        "fpm_children_bury()",
        252,
        "SIGTERM",
    )
