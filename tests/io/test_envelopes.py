"""Record values → log lines: raw, Filebeat, Vector, Fluent Bit, configurable paths; bad ones dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import DeadLetter, SourceRef
from processor.io.envelopes import Envelope, Unwrapped

SRC = SourceRef("logs", 41, 3)
LINE = '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /slow.php HTTP/1.1" 502 157 "-" "curl/8.5.0"'
ERROR = (
    "2026/11/24 05:42:00 [error] 21#21: *7 recv() failed (104: Connection reset by peer) while reading "
    'response header from upstream, client: 127.0.0.1, server: _, request: "GET /slow.php HTTP/1.1"'
)
FILEBEAT = {
    "@timestamp": "2026-11-24T05:42:00.123Z",
    "message": LINE,
    "host": {"name": "web-1"},
    "log": {"file": {"path": "/var/log/nginx/access.log"}, "offset": 1234},
    "input": {"type": "filestream"},
}
VECTOR = {
    "message": ERROR,
    "host": "web-2",
    "file": "/var/log/nginx/error.log",
    "source_type": "file",
    "timestamp": "2026-11-24T05:42:00Z",
}
FLUENTBIT = {"date": 1795499520.0, "log": LINE + "\n", "hostname": "web-3"}


def js(doc: Any) -> bytes:
    return orjson.dumps(doc)


@dataclass(frozen=True)
class Case:
    why: str
    value: bytes | None
    kind: str = "auto"
    text: str | None = None  # expected line (None: a dead letter)
    host: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # part of the dead letter's reason
    options: dict[str, Any] = field(default_factory=dict)


CASES = [
    # raw lines: the common case, with or without the terminator a shipper leaves on
    Case("raw line", LINE.encode(), "raw", LINE),
    Case("raw line with CRLF", LINE.encode() + b"\r\n", "raw", LINE),
    Case("auto: raw line", LINE.encode(), "auto", LINE),
    # each shipper's shape, given explicitly and detected
    Case("filebeat", js(FILEBEAT), "filebeat", LINE, "web-1", {"log_file": "/var/log/nginx/access.log"}),
    Case("auto: filebeat", js(FILEBEAT), "auto", LINE, "web-1", {"log_file": "/var/log/nginx/access.log"}),
    Case("filebeat flattened keys", js({"message": LINE, "host.name": "web-1"}), "filebeat", LINE, "web-1"),
    Case("vector", js(VECTOR), "vector", ERROR, "web-2", {"log_file": "/var/log/nginx/error.log"}),
    Case("auto: vector", js(VECTOR), "auto", ERROR, "web-2", {"log_file": "/var/log/nginx/error.log"}),
    Case("fluent bit (trailing newline kept by tail)", js(FLUENTBIT), "fluentbit", LINE, "web-3"),
    Case("auto: fluent bit", js(FLUENTBIT), "auto", LINE, "web-3"),
    Case("fluent bit host key", js({"log": LINE, "host": "web-4"}), "fluentbit", LINE, "web-4"),
    # configurable dotted paths for in-house shippers
    Case(
        "custom paths",
        js({"payload": {"line": LINE}, "meta": {"node": "web-9"}}),
        "auto",
        LINE,
        "web-9",
        options={"message_field": "payload.line", "host_field": "meta.node"},
    ),
    # an NGINX escape=json access line is JSON but no envelope: it is the log line itself
    Case(
        "auto: escape=json access line",
        b'{"status":"502","request":"GET / HTTP/1.1"}',
        "auto",
        '{"status":"502","request":"GET / HTTP/1.1"}',
    ),
    Case("auto: a raw line starting with {", b"{not json at all", "auto", "{not json at all"),
    # invalid UTF-8 survives (surrogateescape) so the dead-letter output can show the real bytes
    Case("invalid utf-8 kept", b"GET /\xff\xfe x", "raw", "GET /\udcff\udcfe x"),
    # bad envelopes: a dead letter with a reason, never an exception
    Case("filebeat: not json", b"plain text", "filebeat", reason="filebeat envelope: not JSON"),
    Case("vector: json array", b'["a"]', "vector", reason="expected a JSON object, got list"),
    Case(
        "filebeat: no message",
        js({"host": {"name": "web-1"}}),
        "filebeat",
        reason="filebeat envelope: message field 'message' is missing",
    ),
    Case(
        "fluentbit: message not a string",
        js({"log": 5}),
        "fluentbit",
        reason="fluentbit envelope: message field 'log' is a int",
    ),
    Case(
        "custom path missing",
        js({"message": LINE}),
        "auto",
        reason="message field 'payload.line' is missing",
        options={"message_field": "payload.line"},
    ),
    Case(
        "too big",
        b"x" * 101,
        "raw",
        reason="record value is 101 bytes, above delivery.max_record_bytes (100)",
        options={"max_record_bytes": 100},
    ),
    Case("tombstone", None, "auto", reason="no value (a tombstone)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_envelopes(case: Case) -> None:
    got = Envelope(case.kind, **case.options).unwrap(case.value, SRC)
    if case.text is None:
        assert isinstance(got, DeadLetter), got
        assert case.reason in got.reason
        assert got.source == SRC
        return
    assert got == Unwrapped(case.text, case.host, case.extra)


def test_dead_letter_keeps_the_raw_value_readable() -> None:
    got = Envelope("vector").unwrap(b"\xff not json", SRC)
    assert isinstance(got, DeadLetter)
    assert got.to_dict()["raw"] == "\\xff not json"
    assert got.to_dict()["source"] == "logs[3]@41"


@pytest.mark.parametrize("kind", ["auto", "raw", "filebeat", "vector", "fluentbit"])
def test_raw_text_answers_only_where_unwrap_gives_a_plain_raw_line(kind: str) -> None:
    envelope = Envelope(kind, max_record_bytes=64)
    values: list[bytes | None] = [
        None,
        b"",
        b"\n",
        b"a line\n",
        b"a line\r\n",
        b"a line",
        b'  {"message": "x", "host": "h"}',
        b'{"message": "x"}',
        b"\t{not json",
        b"{not json",
        b"x" * 65,
        b"\xff\xfe broken utf-8\n",
        b'\x0b{"log": "y"}',
        b" leading space",
        b"\r\n",
    ]
    for value in values:
        fast = envelope.raw_text(value)
        if fast is None:
            continue
        got = envelope.unwrap(value, SourceRef("t", 0, 0))
        assert isinstance(got, Unwrapped) and (got.text, got.host, got.extra) == (fast, None, {}), value
    answered = sum(envelope.raw_text(v) is not None for v in values)
    assert answered == (0 if kind not in ("auto", "raw") else 8 if kind == "auto" else 13), answered


_VALUE_PIECES = st.sampled_from(
    [
        b"a line",
        b" ",
        b"\t",
        b"\r",
        b"\n",
        b"\r\n",
        b"{",
        b'{"message": "x"}',
        b"\xff",
        b"\xe2\x82",
        b"\x0b",
        b"x" * 40,
        b"502",
    ]
)
_VALUES = st.lists(st.one_of(st.none(), st.lists(_VALUE_PIECES, max_size=4).map(b"".join)), min_size=1, max_size=8)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(["auto", "raw", "filebeat"]), _VALUES)
def test_a_block_holds_the_lines_raw_text_gives(kind: str, values: list[bytes | None]) -> None:
    # Envelope.block (the service's block path) against raw_text on each value: a block exactly when every value
    # is a plain raw line with no newline but a trailing "\n" (not "\r\n"), and then the lines raw_text gives
    envelope = Envelope(kind, max_record_bytes=64)

    def one_line(value: bytes | None) -> bool:
        return (
            value is not None
            and envelope.raw_text(value) is not None
            and value.count(b"\n") == value.endswith(b"\n")
            and not value.endswith(b"\r\n")
        )

    block = envelope.block(values)
    assert (block is not None) == all(one_line(v) for v in values)
    if block is not None:
        assert block.decode("utf-8", "surrogateescape").split("\n") == [envelope.raw_text(v) for v in values]


def test_a_block_of_shipped_lines_drops_each_terminator() -> None:
    envelope = Envelope("auto")
    assert envelope.block([b"a\n", b"b\n", b"c\n"]) == b"a\nb\nc"
    assert envelope.block([b"a\n", b"b", b"c\n"]) == b"a\nb\nc"
    assert envelope.block([b"a", b"b"]) == b"a\nb"
    assert envelope.block([b"a\r\n", b"b\r\n"]) is None  # raw_text drops "\r\n" whole: line by line
    assert envelope.block([b"a\nb", b"c"]) is None  # a multi-line value
    assert envelope.block([b"a", b' {"message": "x"}']) is None  # an envelope among them
    assert envelope.block([b"a", None]) is None
    assert Envelope("raw").block([b"a", b'{"message": "x"}']) == b'a\n{"message": "x"}'
