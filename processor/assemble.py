"""Physical lines → log entries: multi-line NGINX ``FastCGI sent in stderr`` entries and slowlog entries.

A small explicit state per stream (a file, a topic partition). Continuation lines join the entry
before them; a continuation with nothing before it is reported, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from processor.events import NGINX_ERROR, PHP_FPM_SLOWLOG, Record

StartTest = Callable[[str], bool]


@dataclass(slots=True)
class _Open:
    first: Record
    parts: list[str]
    line_count: int


class EntryAssembler:
    """Feeds records of multi-line log types through per-stream buffers; others pass straight on.

    ``starts`` maps a log type to its grammar's ``is_entry_start``. Returns completed records; a record
    whose ``text`` is ``None``-like never occurs: orphans come back with ``log_type`` kept and are flagged
    by ``orphan`` so the caller can dead-letter them with a reason.
    """

    def __init__(self, starts: dict[str, StartTest]) -> None:
        self._starts = starts
        self._open: dict[str, _Open] = {}
        self._blank: dict[str, int] = {}

    def feed(self, record: Record) -> tuple[list[Record], list[Record]]:
        """Returns (complete entries, orphan continuation lines)."""
        start = self._starts.get(record.log_type or "")
        if start is None:
            return [record], []
        stream = record.source.stream
        text = record.text
        is_blank = not text.strip()
        if record.log_type == PHP_FPM_SLOWLOG and is_blank:
            # blank lines separate slowlog entries; they belong to the entry they close
            # slowlog entries are separated by blank lines: count them with the entry they follow
            cur = self._open.get(stream)
            if cur is not None:
                cur.line_count += record.line_count
            else:
                self._blank[stream] = self._blank.get(stream, 0) + record.line_count
            return [], []
        if start(text):
            done = self._close(stream)
            blanks = self._blank.pop(stream, 0)
            self._open[stream] = _Open(record, [text], record.line_count + blanks)
            return done, []
        cur = self._open.get(stream)
        if cur is None:
            return [], [record]
        cur.parts.append(text)
        cur.line_count += record.line_count
        return [], []

    def _close(self, stream: str) -> list[Record]:
        cur = self._open.pop(stream, None)
        if cur is None:
            return []
        text = "\n".join(cur.parts)
        return [cur.first._replace(text=text, line_count=cur.line_count)]

    def end_stream(self, stream: str) -> tuple[list[Record], int]:
        """Close the stream's open entry; also returns blank lines that belonged to no entry."""
        return self._close(stream), self._blank.pop(stream, 0)

    def flush(self) -> tuple[list[Record], int]:
        out: list[Record] = []
        blanks = sum(self._blank.values())
        self._blank.clear()
        for stream in sorted(self._open):
            out.extend(self._close(stream))
        return out, blanks

    def held_offsets(self) -> dict[str, int]:
        """Lowest source offset still buffered per stream (for safe Kafka commits)."""
        return {s: o.first.source.offset for s, o in self._open.items()}

    def oldest_open(self) -> list[str]:
        return sorted(self._open)


MULTILINE_TYPES = (NGINX_ERROR, PHP_FPM_SLOWLOG)
