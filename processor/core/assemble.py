"""Physical lines → log entries: multi-line NGINX ``FastCGI sent in stderr`` entries and slowlog entries.

A small explicit state per stream (a file, a topic partition). Continuation lines join the entry
before them; a continuation with nothing before it, binary junk, and lines past a cap are reported, not dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from processor.core.events import NGINX_ERROR, PHP_FPM_SLOWLOG, Record

StartTest = Callable[[str], bool]
Detect = Callable[[Record], "Record | None"]


@dataclass(slots=True)
class _Open:
    first: Record
    parts: list[str]
    line_count: int
    size: int  # bytes, the newlines between lines included


# A continuation line past either cap is dead-lettered, not joined: NGINX writes one error entry in at most
# 2048 bytes (its FastCGI stderr lines included), and a slowlog entry is one stack of request_slowlog_trace_depth
# frames; a run of lines past that is another log mixed in, or junk.
CONTINUATION_CAPS: Final[dict[str, tuple[int, int]]] = {NGINX_ERROR: (128, 8192), PHP_FPM_SLOWLOG: (1024, 256 * 1024)}
NO_ENTRY: Final = "continuation line with no entry before it"
# NUL, or control characters / undecodable bytes (surrogateescape) in a quarter of the line: binary data
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\udc80-\udcff]")


def is_binary(text: str) -> bool:
    """Whether ``text`` is binary junk rather than a line of text (NUL, or mostly control bytes)."""
    if "\x00" in text:
        return True
    return len(_CONTROL.findall(text)) * 4 > len(text) > 0 if _CONTROL.search(text) else False


def _bytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


class EntryAssembler:
    """Feeds records of multi-line log types through per-stream buffers; others pass straight on.

    ``starts`` maps a log type to its grammar's ``is_entry_start``. ``detect`` (optional) gives the record of a
    line typed as the log it really is (``None``: no grammar recognises it): in a mixed stream (``docker logs``
    of the nginx image: access and error log in one) a line another grammar recognises is never a continuation
    line, and a line of another log in a multi-line stream is that log's. Returns completed records, and
    orphans with the reason each is dead-lettered (a continuation with no entry before it, binary junk, a line
    past ``CONTINUATION_CAPS``). Blank lines never reach it: the pipeline counts them before assembling.
    """

    def __init__(self, starts: dict[str, StartTest], detect: Detect | None = None) -> None:
        self._starts = starts
        self._detect = detect
        self._open: dict[str, _Open] = {}

    def is_open(self, stream: str) -> bool:
        """Whether an entry of ``stream`` is held (the stream's next line must come through ``feed``)."""
        return stream in self._open

    def retyped(self, record: Record) -> Record | None:
        """``record`` typed as the other log its line is, or ``None`` (not recognised, or its own type)."""
        if self._detect is None:
            return None
        other = self._detect(record)
        if other is None or (other.log_type == record.log_type and other.access_format == record.access_format):
            return None
        return other

    def feed(self, record: Record) -> tuple[list[Record], list[tuple[Record, str]]]:
        """Returns (complete entries, orphan lines with their reasons)."""
        stream = record.source.stream
        cur = self._open.get(stream)
        detected: Record | None = None
        if record.log_type is None:  # a mixed stream typed line by line
            detected = self._detect(record) if self._detect is not None else None
            if detected is None and cur is None:
                return [record], []  # parse dead-letters it, located
            record = detected or record
        start = self._starts.get(record.log_type or "")
        text = record.text
        if start is not None and start(text):
            done = self._close(stream)
            self._open[stream] = _Open(record, [text], record.line_count, _bytes(text))
            return done, []
        if cur is None:
            if start is None:
                return [record], []
            other = self.retyped(record)  # a multi-line log's stream: a line of another log is that log's
            if other is not None and other.log_type != record.log_type:
                return self.feed(other)
            return [], [(record, NO_ENTRY)]
        if detected is None and record.log_type is not None and self._detect is not None:
            detected = self._detect(record)
        if detected is not None and (detected.log_type != cur.first.log_type or self._starts_entry(detected)):
            # a line of a log never continues an entry (but the open entry's own lines do: slowlog frames)
            done = self._close(stream)
            more, orphans = self.feed(detected)
            return done + more, orphans
        if is_binary(text):
            return [], [(record, "binary data after an entry: not a continuation line")]
        max_lines, max_bytes = CONTINUATION_CAPS.get(cur.first.log_type or "", (128, 8192))
        size = _bytes(text) + 1
        if cur.line_count + record.line_count > max_lines or cur.size + size > max_bytes:
            return [], [(record, f"continuation line past the cap of one entry ({max_lines} lines, {max_bytes} bytes)")]
        cur.parts.append(text)
        cur.line_count += record.line_count
        cur.size += size
        return [], []

    def _starts_entry(self, record: Record) -> bool:
        start = self._starts.get(record.log_type or "")
        return start is not None and start(record.text)

    def _close(self, stream: str) -> list[Record]:
        cur = self._open.pop(stream, None)
        if cur is None:
            return []
        text = "\n".join(cur.parts)
        first = cur.first  # (not NamedTuple._replace: it costs ~1 µs an entry more)
        return [
            Record(text, first.source, first.log_type, first.host, first.access_format, cur.line_count, first.origin)
        ]

    def end_stream(self, stream: str) -> list[Record]:
        """Close the stream's open entry."""
        return self._close(stream)

    def flush(self) -> list[Record]:
        out: list[Record] = []
        for stream in sorted(self._open):
            out.extend(self._close(stream))
        return out

    def held_offsets(self) -> dict[str, int]:
        """Lowest source offset still buffered per stream (for safe Kafka commits)."""
        return {s: o.first.source.offset for s, o in self._open.items()}
