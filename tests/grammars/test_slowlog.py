"""PHP-FPM slowlog entries: header, script, frames (``+++ dump failed`` included), cut and hostile input."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from grammars.result import ParseError
from grammars.slowlog import is_entry_start, parse_slowlog_entry

ENTRY = """
[11-Jul-2022 05:36:59]  [pool www] pid 156
script_filename = /var/www/html/public/index.php
[0x00007f63028161b0] mysqlConnect() /var/www/html/public/index.php:18
[0x00007f6302816150] dbConnect() /var/www/html/public/index.php:22
[0x00007f63028160f0] main() /var/www/html/public/index.php:25
"""

# (description, entry, expected subset of the fields)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "three frames, leading blank line",
        ENTRY,
        {
            "time": datetime(2022, 7, 11, 5, 36, 59),
            "pool": "www",
            "pid": 156,
            "script_filename": "/var/www/html/public/index.php",
            "frames": [
                {
                    "address": "0x00007f63028161b0",
                    "function": "mysqlConnect()",
                    "file": "/var/www/html/public/index.php",
                    "line": 18,
                },
                {
                    "address": "0x00007f6302816150",
                    "function": "dbConnect()",
                    "file": "/var/www/html/public/index.php",
                    "line": 22,
                },
                {
                    "address": "0x00007f63028160f0",
                    "function": "main()",
                    "file": "/var/www/html/public/index.php",
                    "line": 25,
                },
            ],
        },
    ),
    (
        "internal frames and a failed dump",
        "[15-May-2015 12:50:22]  [pool www] pid 1819\nscript_filename = /w/index.php\n"
        "[0x00007fff78ab00f0] replace() unknown:0\n[0x00007f2d286c10f8] +++ dump failed\n",
        {
            "frames": [
                {"address": "0x00007fff78ab00f0", "function": "replace()", "file": "unknown", "line": 0},
                {"address": "0x00007f2d286c10f8", "function": None, "file": None, "line": None},
            ]
        },
    ),
    (
        "namespaced closure and include pseudo-function",
        "[16-Nov-2020 08:48:46]  [pool www] pid 157\nscript_filename = /app/webroot/index.php\n"
        "[0x00007f3fa3017ba0] Cake\\Database\\{closure}() /app/src/Core/Retry/CommandRetry.php:70\n"
        "[0x00007f3fa3017350] [INCLUDE_OR_EVAL]() /app/src/View/View.php:1176",
        {
            "frames": [
                {
                    "address": "0x00007f3fa3017ba0",
                    "function": "Cake\\Database\\{closure}()",
                    "file": "/app/src/Core/Retry/CommandRetry.php",
                    "line": 70,
                },
                {
                    "address": "0x00007f3fa3017350",
                    "function": "[INCLUDE_OR_EVAL]()",
                    "file": "/app/src/View/View.php",
                    "line": 1176,
                },
            ]
        },
    ),
    (
        "header only (the trace was cut)",
        "[05-May-2017 13:44:39]  [pool log] pid 4109",
        {"pool": "log", "pid": 4109, "script_filename": None, "frames": []},
    ),
    (
        "CRLF line ends",
        "[05-May-2017 13:44:39]  [pool log] pid 4109\r\nscript_filename = /x.php\r\n",
        {"script_filename": "/x.php"},
    ),
]


@pytest.mark.parametrize(("description", "entry", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(description: str, entry: str, expected: dict[str, Any]) -> None:
    fields = parse_slowlog_entry(entry)
    assert not isinstance(fields, ParseError), f"{description}: {fields}"
    assert {key: fields[key] for key in expected} == expected
    assert set(fields) == {"time", "pool", "pid", "script_filename", "frames"}


# (description, entry, 1-based column in the entry where parsing fails)
FAILURES = [
    ("empty", "", 1),
    ("a master-log line", "[11-Jul-2022 05:34:02] WARNING: [pool www] child 155 started", 22),
    ("a frame without its file", "[11-Jul-2022 05:34:02]  [pool www] pid 1\n[0x00007f63028160f0] sleep()", 63),
    ("garbage after the script", "[11-Jul-2022 05:34:02]  [pool www] pid 1\nscript_filename = /x\nhello", 63),
]


@pytest.mark.parametrize(("description", "entry", "column"), FAILURES, ids=[f[0] for f in FAILURES])
def test_fails_at(description: str, entry: str, column: int) -> None:
    result = parse_slowlog_entry(entry)
    assert isinstance(result, ParseError), description
    assert result.column == column
    assert result.line == entry


@pytest.mark.parametrize(
    "entry",
    [
        "[11-Jul-2022 05:34:02]  [pool www] pid 1\n" + "[0x1] f() /x.php:1\n" * 100_000,
        "[11-Jul-2022 05:34:02]  [pool " + "]" * 1_000_000,
        "[0x" + "0" * 1_000_000,
        b"[11-Jul-2022 05:34:02]  [pool \xff] pid 1\x00".decode("utf-8", "surrogateescape"),
    ],
)
def test_hostile_entries_never_raise(entry: str) -> None:
    start = time.perf_counter()
    assert isinstance(parse_slowlog_entry(entry), (dict, ParseError))
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    ("line", "starts"),
    [
        ("[11-Jul-2022 05:34:02]  [pool www] pid 155", True),
        ("[11-Jul-2022 05:34:02] WARNING: [pool www] child 155 started", False),
        ("script_filename = /x.php", False),
        ("[0x00007f63028160f0] sleep() /x.php:13", False),
    ],
)
def test_is_entry_start(line: str, starts: bool) -> None:
    assert is_entry_start(line) is starts
