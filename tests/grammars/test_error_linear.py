"""An NGINX error entry costs linear time in its length, whatever its shape (issue #23).

No clock: an outage floods the log with long, odd entries, and a wall-clock threshold only tells a
fast machine from a slow one. Instead the test counts every call the parse makes (Python functions and
the C ones behind them: ``str.rfind``, ``Pattern.match``, …). A parse made of a fixed number of linear
passes makes the same number of calls for an entry twice as long; a scan that loops per candidate (the
old errno scan ran one ``rfind`` and one regex to the end of the entry per `` (``) makes more.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from grammars.error import message_parts, parse_error_entry
from grammars.result import ParseError

HEAD = "2016/10/25 14:49:34 [error] 1#0: *1 "


def count_calls(parse: Callable[[str], Any], text: str) -> int:
    """How many Python and C calls ``parse(text)`` makes (its own call excluded)."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    # no collection while counting: a gc callback (hypothesis registers one) would count as calls of the parse
    enabled = gc.isenabled()
    gc.disable()
    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        parse(text)
    finally:
        sys.setprofile(previous)
        if enabled:
            gc.enable()
    return calls


# (description, entry of about n characters: the shapes that made a scan revisit the entry)
SHAPES: list[tuple[str, Callable[[int], str]]] = [
    # every " (N: " is a candidate errno, and the line break at the end made each one fail only there
    ("errno candidates before a line break", lambda n: HEAD + " (1: " * (n // 5) + "\n)"),
    ("errno candidates, each one line", lambda n: HEAD + " (1: x\n" * (n // 7) + ")"),
    ("open parentheses, none an errno", lambda n: HEAD + "x (" * (n // 3) + ")"),
    ("open parentheses before an action", lambda n: HEAD + "x (" * (n // 3) + ") while reading"),
    ("a long strerror", lambda n: HEAD + "connect() failed (111: " + "x" * n + ")"),
    ("many actions", lambda n: HEAD + " while " * (n // 7)),
    ("client keys without a context", lambda n: HEAD + ", client: " * (n // 10)),
    ("commas", lambda n: HEAD + "," * n),
    ("quotes in a context value", lambda n: HEAD + 'm, client: 1, request: "' + '"' * n),
    ("quoted values closed before later keys", lambda n: HEAD + 'm, client: 1, request: "' + '", host: ' * (n // 9)),
    ("a word that is almost a syscall", lambda n: HEAD + "a" * n + "( to x failed (2: y)"),
    ("a target that never says failed", lambda n: HEAD + "connect() to " + "x" * n + " (2: y)"),
    (
        "FastCGI stderr over many physical lines",
        lambda n: HEAD + 'FastCGI sent in stderr: "PHP message: x (2: y)\n' * (n // 44) + '" while reading, client: 1',
    ),
    ("no timestamp", lambda n: "x (1: " * (n // 6) + "\n)"),
]


@pytest.mark.parametrize(("description", "entry"), SHAPES, ids=[s[0] for s in SHAPES])
def test_parse_makes_as_many_calls_for_an_entry_twice_as_long(description: str, entry: Callable[[int], str]) -> None:
    parse_error_entry(entry(100))  # warm the per-second time cache and the lazily built parsers
    short, long = entry(2048), entry(4096)
    assert count_calls(parse_error_entry, long) == count_calls(parse_error_entry, short), description


@pytest.mark.parametrize(("description", "entry"), SHAPES, ids=[s[0] for s in SHAPES])
def test_message_parts_makes_as_many_calls_for_a_message_twice_as_long(
    description: str, entry: Callable[[int], str]
) -> None:
    short, long = entry(2048)[len(HEAD) :], entry(65536)[len(HEAD) :]
    assert count_calls(message_parts, long) == count_calls(message_parts, short), description


# (description, message, errno, strerror): which " (N: …)" is the errno when several could be
ERRNO_CASES: list[tuple[str, str, int | None, str | None]] = [
    # the last candidate wins, even when its strerror holds an earlier one
    ("two candidates", "x (1: a) (2: b)", 2, "b"),
    (
        "strerror with parentheses",
        "upstream timed out (10060: FormatMessage() error:(15105))",
        10060,
        "FormatMessage() error:(15105)",
    ),
    # a strerror never spans lines: a candidate before the last line break is no errno
    ("candidate before a line break", "x (1: a\nb)", None, None),
    ("candidate on the last line", "x (1: a\nb (2: c)", 2, "c"),
    ("many candidates before a line break", " (1: " * 1000 + "\n)", None, None),
    ("no digits", "x (a: b)", None, None),
    ("no closing parenthesis", "x (1: b) y", None, None),
    (
        "the errno before an action",
        "recv() failed (104: Connection reset by peer) while reading",
        104,
        "Connection reset by peer",
    ),
]


@pytest.mark.parametrize(("description", "message", "errno", "strerror"), ERRNO_CASES, ids=[c[0] for c in ERRNO_CASES])
def test_errno_is_the_last_candidate_on_the_last_line(
    description: str, message: str, errno: int | None, strerror: str | None
) -> None:
    parts = message_parts(message)
    assert (parts["errno"], parts["strerror"]) == (errno, strerror), description


def test_a_megabyte_entry_parses_whole() -> None:
    # a megabyte of errno candidates before the real one: the fields are the ones a short entry gets
    line = HEAD + "x (1: y\n" * 131_072 + "connect() failed (111: Connection refused), client: 1.2.3.4"
    fields = parse_error_entry(line)
    assert not isinstance(fields, ParseError)
    assert (fields["errno"], fields["strerror"], fields["client"]) == (111, "Connection refused", "1.2.3.4")
