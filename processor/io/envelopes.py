"""Kafka record value → (log line, host, extra): raw lines and the JSON envelopes log shippers write.

Shapes understood out of the box (field paths are dotted and configurable):

- Filebeat / Elastic Agent: ``message``, ``host.name``, ``log.file.path``
- Vector: ``message``, ``host``, ``file``
- Fluent Bit: ``log``, ``hostname`` (or ``host``)

``auto`` takes a JSON object of one of those shapes and anything else as a raw line. A value that cannot be
unwrapped becomes a ``DeadLetter`` with the reason — never an exception. Invalid UTF-8 is kept with
``surrogateescape`` so the dead-letter output shows the bytes that were really sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

import orjson

from processor.core.events import DeadLetter, SourceRef


@dataclass(frozen=True, slots=True)
class Shape:
    """Where one shipper puts the line, the host and the file the line came from."""

    name: str
    message: tuple[str, ...]
    host: tuple[str, ...]
    file: tuple[str, ...]


SHAPES: dict[str, Shape] = {
    "filebeat": Shape("filebeat", ("message",), ("host.name",), ("log.file.path",)),
    "vector": Shape("vector", ("message",), ("host",), ("file",)),
    "fluentbit": Shape("fluentbit", ("log",), ("hostname", "host"), ("path", "file")),
}
# auto: the first shape whose message field is a string (Fluent Bit's `log` is unambiguous; Filebeat and
# Vector share `message` and differ in where the host is, so both host paths are tried).
_AUTO = Shape("auto", ("message", "log"), ("host.name", "hostname", "host"), ("log.file.path", "file", "path"))


_ASCII_SPACE = frozenset({b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"})  # what bytes.lstrip() strips
# a value that starts as JSON (after blanks but newlines): the block's first line, or one after a newline
_JSON_FIRST = re.compile(rb"[ \t\r\x0b\x0c]*+\{")
_JSON_NEXT = re.compile(rb"\n[ \t\r\x0b\x0c]*+\{")


@dataclass(frozen=True, slots=True)
class Unwrapped:
    """One record's log text and what the envelope said about it."""

    text: str
    host: str | None
    extra: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """How to read one input's record values (built once per input from its config)."""

    kind: str = "auto"  # auto | raw | filebeat | vector | fluentbit
    message_field: str = ""
    host_field: str = ""
    max_record_bytes: int = 1_048_576

    def raw_text(self, value: bytes | None) -> str | None:
        """The line when the value is a plain raw line (kind ``raw``, or ``auto`` and not JSON), else None (a
        tombstone, an oversized value, an envelope: ``unwrap`` decides). ``unwrap`` starts with it; the service's
        batch loop calls it alone."""
        if value is None or len(value) > self.max_record_bytes:
            return None
        kind = self.kind
        first = value[:1]
        if kind == "raw" or (
            kind == "auto" and first != b"{" and (first not in _ASCII_SPACE or value.lstrip()[:1] != b"{")
        ):
            return _line(_text(value))
        return None

    def block(self, values: Sequence[bytes | None]) -> bytes | None:
        """The lines of ``values`` joined by ``\n``, when every value is a plain raw line (``raw_text`` gives it)
        with no newline but the one a shipper may leave at its end (dropped, as ``raw_text`` does); else None."""
        if self.kind not in ("raw", "auto") or not values:
            return None
        lines = cast("Sequence[bytes]", values)
        try:
            joined = b"\n".join(lines)
        except TypeError:  # a tombstone (None)
            return None
        n = len(lines)
        if len(joined) > self.max_record_bytes and max(map(len, lines)) > self.max_record_bytes:
            return None
        newlines = joined.count(b"\n")
        if newlines != n - 1:  # a value holds a newline: a shipper's at its end, or a multi-line record
            ends = sum(map(bytes.endswith, lines, repeat(b"\n")))
            if newlines != n - 1 + ends:
                return None  # a newline inside a value: a multi-line record, the record's own business
            if sum(map(bytes.endswith, lines, repeat(b"\r\n"))):
                return None  # raw_text drops "\r\n" whole
            joined = (
                b"".join(lines)[:-1]
                if ends == n
                else b"\n".join(line[:-1] if line.endswith(b"\n") else line for line in lines)
            )
        if self.kind == "auto" and b"{" in joined and (_JSON_FIRST.match(joined) or _JSON_NEXT.search(joined)):
            return None  # a JSON value: an envelope (or an escape=json access line) for unwrap
        return joined

    def unwrap(self, value: bytes | None, source: SourceRef) -> Unwrapped | DeadLetter:
        """Record value → its log line, or a dead letter saying why not."""
        if value is None:
            return DeadLetter(source, "record has no value (a tombstone)", "")
        if len(value) > self.max_record_bytes:
            return DeadLetter(
                source,
                f"record value is {len(value)} bytes, above delivery.max_record_bytes ({self.max_record_bytes})",
                _text(value[:2048]) + "…",
            )
        text = self.raw_text(value)  # raw, or auto and not JSON
        if text is not None:
            return Unwrapped(text, None, {})
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            if self.kind == "auto":
                return Unwrapped(_line(_text(value)), None, {})  # a raw line that starts with `{`
            return DeadLetter(source, f"{self.kind} envelope: not JSON ({exc})", _text(value))
        if not isinstance(doc, dict):
            if self.kind == "auto":
                return Unwrapped(_line(_text(value)), None, {})
            return DeadLetter(
                source, f"{self.kind} envelope: expected a JSON object, got {type(doc).__name__}", _text(value)
            )
        return self._from_doc(doc, value, source)

    def _from_doc(self, doc: dict[str, Any], value: bytes, source: SourceRef) -> Unwrapped | DeadLetter:
        shape = SHAPES.get(self.kind, _AUTO)
        message_paths = (self.message_field,) if self.message_field else shape.message
        host_paths = (self.host_field,) if self.host_field else shape.host
        message = _first(doc, message_paths)
        if not isinstance(message, str):
            if self.kind == "auto" and not self.message_field:
                # JSON with none of the shipper shapes: an NGINX `escape=json` access line, sent as is
                return Unwrapped(_text(value).rstrip("\r\n"), None, {})
            wanted = " or ".join(repr(p) for p in message_paths)
            got = "missing" if message is None else f"a {type(message).__name__}"
            return DeadLetter(source, f"{shape.name} envelope: message field {wanted} is {got}", _text(value))
        host = _first(doc, host_paths)
        if isinstance(host, dict):  # Vector's `host` can be an object in some pipelines; ECS uses host.name
            host = host.get("name")
        extra: dict[str, Any] = {}
        file = _first(doc, shape.file)
        if isinstance(file, str):
            extra["log_file"] = file
        return Unwrapped(_line(message), host if isinstance(host, str) and host else None, extra)


def _first(doc: dict[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        found = _dig(doc, path)
        if found is not None:
            return found
    return None


def _dig(doc: Any, path: str) -> Any:
    """``host.name`` → doc["host"]["name"], and also doc["host.name"] (flattened shippers write that)."""
    if isinstance(doc, dict) and path in doc:
        return doc[path]
    head, dot, rest = path.partition(".")
    if not dot or not isinstance(doc, dict):
        return None
    return _dig(doc.get(head), rest)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _line(text: str) -> str:
    # shippers and `kafka-console-producer` leave the line terminator on; the grammars want the bare line
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    return text
