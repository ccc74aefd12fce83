"""A line that parses as no access format costs one pyparsing run, to locate its error (issue #23).

In an outage the access log may fill with junk (a proxy's HTML error page, a misrouted stream); each such
line becomes a dead letter. pyparsing is the slow part (~15 µs a run against ~1 µs for the lowered regex):
an unnamed access record used to run it once per known format, three times, where only the first
format's error is reported. No clock: the test counts ``parse_string`` calls.
"""

from __future__ import annotations

from typing import Any

import pyparsing as pp
import pytest

from processor.core.events import NGINX_ACCESS, DeadLetter, Event, Record, SourceRef
from processor.core.parse import ParseSettings, RecordParser

ACCESS = '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /a.php HTTP/1.1" 502 5 "-" "curl/8.5.0"'

# (why it matters, line, reason, column): the dead letter of each is the combined format's, as before
JUNK: list[tuple[str, str, str, int]] = [
    ("printf 'junk %d' lines: an address-like word, then no ' - '", "junk 17", "Expected ' - '", 5),
    (
        "an HTML error page (remote_addr takes any word)",
        "<html><body>502 Bad Gateway</body></html>",
        "Expected ' - '",
        16,
    ),
    ("an access line cut before its user agent", ACCESS[:-14], "Expected '\" \"'", len(ACCESS) - 13),
    (
        "an impossible date: the converter's error",
        ACCESS.replace("24/Nov", "31/Nov"),
        "bad time: day is out of range for month",
        16,
    ),
]


@pytest.fixture
def parse_string_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = pp.ParserElement.parse_string

    def counted(self: pp.ParserElement, *args: Any, **kwargs: Any) -> pp.ParseResults:
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pp.ParserElement, "parse_string", counted)
    return calls


@pytest.mark.parametrize(("why", "line", "reason", "column"), JUNK, ids=[j[0] for j in JUNK])
def test_an_unparsable_access_line_runs_pyparsing_once(
    parse_string_calls: list[int], why: str, line: str, reason: str, column: int
) -> None:
    parser = RecordParser(ParseSettings())
    letter = parser.parse(Record(line, SourceRef("access.log", 1), NGINX_ACCESS))
    assert isinstance(letter, DeadLetter), why
    assert parse_string_calls[0] == 1, why
    assert (letter.reason, letter.column, letter.raw) == (reason, column, line), why


@pytest.mark.parametrize(
    ("line", "fmt"),
    [
        (ACCESS, "combined"),
        (ACCESS + ' "10.0.0.1"', "main"),  # not combined: found by main's regex alone
        (ACCESS + " 0.004 rest", "combined_plus"),  # the last resort
    ],
)
def test_the_other_formats_still_match_without_pyparsing(parse_string_calls: list[int], line: str, fmt: str) -> None:
    parser = RecordParser(ParseSettings())
    event = parser.parse(Record(line, SourceRef("access.log", 1), NGINX_ACCESS))
    assert isinstance(event, Event) and event.fields["status"] == 502
    assert parse_string_calls[0] == (0 if fmt == "combined" else 1)  # combined's own error is still located
