"""Typed values that flow through the core: input records, parsed events, dead letters.

Imports nothing of the edges. Every value is frozen: the core never mutates what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

Fields = dict[str, Any]

# Log types, as named by grammars.detect.
NGINX_ACCESS: Final = "nginx_access"
NGINX_ERROR: Final = "nginx_error"
PHP_FPM: Final = "php_fpm"
PHP_FPM_SLOWLOG: Final = "php_fpm_slowlog"
PHP_FPM_ACCESS: Final = "php_fpm_access"
LOG_TYPES: Final = (NGINX_ACCESS, NGINX_ERROR, PHP_FPM, PHP_FPM_SLOWLOG, PHP_FPM_ACCESS)

FAILURE_STATUSES: Final = frozenset({502, 504})


class SourceRef(NamedTuple):
    """Where a record came from: ``file:line`` or ``topic[partition]@offset``."""

    name: str
    offset: int
    partition: int | None = None

    def __str__(self) -> str:
        if self.partition is None:
            return f"{self.name}:{self.offset}"
        return f"{self.name}[{self.partition}]@{self.offset}"

    @property
    def stream(self) -> str:
        """The ordered stream this record belongs to (a file, or a topic partition)."""
        return self.name if self.partition is None else f"{self.name}[{self.partition}]"


# Record and Event are NamedTuples, not frozen dataclasses: one of each per log line, and a frozen
# dataclass's __init__ (object.__setattr__ per field) cost ~1.7 µs a line in replay profiles.
class Record(NamedTuple):
    """One raw input record: a log line (or an assembled multi-line entry) and its coordinates.

    ``text`` is decoded with ``surrogateescape`` so invalid UTF-8 survives to the dead-letter output.
    ``log_type`` is None when the type must be detected. ``access_format`` names a log_format.
    """

    text: str
    source: SourceRef
    log_type: str | None = None
    host: str | None = None
    access_format: str | None = None
    line_count: int = 1
    origin: str | None = None  # the log file on the host, when a shipper's envelope says (log.file.path)


class Event(NamedTuple):
    """A parsed log entry with its event time (UTC epoch milliseconds)."""

    log_type: str
    host: str
    ts_ms: int
    fields: Fields
    source: SourceRef
    raw: str
    line_count: int = 1


def without_text(event: Event) -> Event:
    """The event without its raw text, for what is held by id and fields alone (``_replace`` costs more)."""
    return Event(event.log_type, event.host, event.ts_ms, event.fields, event.source, "", event.line_count)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be turned into an event, with a located reason."""

    source: SourceRef
    reason: str
    raw: str
    log_type: str | None = None
    column: int | None = None
    context: str | None = None
    line_count: int = 1

    def to_dict(self) -> Fields:
        return {
            "source": str(self.source),
            "log_type": self.log_type,
            "reason": self.reason,
            "column": self.column,
            "context": self.context,
            "raw": self.raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
            "line_count": self.line_count,
        }


@dataclass(slots=True)
class Counters:
    """What the core counted. Records in = parsed + dead-lettered (in physical lines)."""

    lines_in: int = 0
    lines_parsed: int = 0
    lines_dead_lettered: int = 0
    blank_lines: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    incidents: int = 0
    late_records: int = 0
    late_incidents: int = 0
    future_records: int = 0
    evicted: int = 0
    duplicates: int = 0
    evidence_evicted: int = 0
