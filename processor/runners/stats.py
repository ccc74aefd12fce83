"""The counters of one run over files (replay, replay --workers): lines by type and by file, event-time range.

Accumulated by the runner as it reads (hence mutable); the summary and the report read them at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class LineCounts:
    """Lines of one file or one log type: `read == parsed + dead_lettered` once a run is complete."""

    read: int = 0
    parsed: int = 0
    dead_lettered: int = 0


@dataclass(slots=True)
class ReplayStats:
    """Counters of one replay run, accumulated by the CLI as it reads (hence mutable).

    Timestamps are epoch milliseconds of the first and last event read (event time, not wall clock);
    `late` counts incidents emitted after their window had closed.
    """

    lines_read: int = 0
    parsed: int = 0
    dead_lettered: int = 0
    by_type: dict[str, LineCounts] = field(default_factory=dict)
    by_file: dict[str, LineCounts] = field(default_factory=dict)
    bytes_read: int = 0
    elapsed_s: float = 0.0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    late: int = 0

    def add(self, file: str, log_type: str, *, parsed: int = 0, dead_lettered: int = 0) -> None:
        """Count lines in bulk (per chunk or per file: a call per line would cost more than it tells)."""
        read = parsed + dead_lettered
        self.lines_read += read
        self.parsed += parsed
        self.dead_lettered += dead_lettered
        for counts in (self.by_type.setdefault(log_type, LineCounts()), self.by_file.setdefault(file, LineCounts())):
            counts.read += read
            counts.parsed += parsed
            counts.dead_lettered += dead_lettered

    def see_ts(self, ts_ms: int) -> None:
        """Widen the event-time range to include `ts_ms`."""
        if self.first_ts_ms is None or ts_ms < self.first_ts_ms:
            self.first_ts_ms = ts_ms
        if self.last_ts_ms is None or ts_ms > self.last_ts_ms:
            self.last_ts_ms = ts_ms

    @property
    def balanced(self) -> bool:
        """The replay invariant: nothing read was dropped silently."""
        return self.lines_read == self.parsed + self.dead_lettered
