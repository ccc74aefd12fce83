"""``badgateway filter``: records on stdin, incidents (and/or events) on stdout, line by line.

A drop-in for Logstash's ``pipe`` output/input or any Unix pipeline: raw lines or shipper JSON envelopes
(Filebeat, Vector, Fluent Bit), the log type given (``--type``) or detected per record; continuation lines of a
multi-line NGINX error entry follow the entry before them. Windows close on event time and, when stdin goes
quiet, on wall-clock idleness; EOF closes them all.

Each declared log type (``--wait-for``, by default the three logs) holds the windows until its first record
comes. A backlog — records whose newest time is more than ``idle_timeout`` older than the wall clock, as
``cat access.log error.log php-fpm*.log`` gives — holds every window until EOF (or until stdin is quiet for
``idle_timeout``): one log after the other, not merged in time, then gives ``replay``'s answer, as long as the
windows fit in ``max_state`` (past it the oldest close early, and a warning on stderr says how many). Live
records (within ``idle_timeout`` of the wall clock) close their windows as their time passes.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO, Final

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, PHP_FPM_SLOWLOG, DeadLetter, Record, SourceRef
from processor.core.watermark import NO_WATERMARK
from processor.io.envelopes import Envelope
from processor.io.files import MAX_LINE_BYTES
from processor.io.sinks import JsonLinesSink, Router, check_outputs
from processor.pipeline import Output, Pipeline
from processor.runners.settings import build_pipeline

_TICK_S = 0.25
WAIT_FOR = (NGINX_ACCESS, NGINX_ERROR, PHP_FPM)  # the log types a diagnosis joins
# what a dead letter keeps of an over-long line (the envelope keeps as much of an oversized record)
_HEAD_BYTES: Final = 2048


@dataclass(frozen=True, slots=True)
class OverLong:
    """A line longer than the cap: only its length and its first bytes were kept."""

    length: int
    head: bytes


class LineBuffer:
    """Chunks of stdin in, whole lines out, each byte looked at a bounded number of times.

    A line that spans chunks is kept as a list of pieces and joined once, when its newline comes:
    appending every chunk to one growing ``bytes`` and splitting it again copied and scanned the line
    once per chunk, quadratic in its length (an 8 MB line took seconds). Past ``max_line_bytes``
    (replay's cap: a line that long is a binary file or a runaway writer) its bytes are counted and
    dropped until the newline, and the line comes out as ``OverLong``, so memory stays bounded too.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._pieces: list[bytes] = []  # the start of the current line, within the cap
        self._held = 0  # bytes in _pieces
        self._over: OverLong | None = None  # the current line, once it passed the cap

    def feed(self, chunk: bytes) -> list[bytes | OverLong]:
        """The lines ``chunk`` completes (without their ``\\n``); the rest waits for the next chunk."""
        *complete, rest = chunk.split(b"\n")
        lines: list[bytes | OverLong] = []
        if complete:
            lines.append(self._finish(complete[0]))
            if len(chunk) > self.max_line_bytes:  # only then can a line inside one chunk pass the cap
                lines += [self._capped(line) for line in complete[1:]]
            else:
                lines += complete[1:]
        self._hold(rest)
        return lines

    def flush(self) -> bytes | OverLong | None:
        """The last line when the input ended without a newline after it."""
        if self._over is None and not self._held:
            return None
        return self._finish(b"")

    def _hold(self, piece: bytes) -> None:
        if self._over is not None:
            self._over = OverLong(self._over.length + len(piece), self._over.head)
        elif self._held + len(piece) > self.max_line_bytes:
            self._pieces.append(piece)
            self._over = OverLong(self._held + len(piece), _head(self._pieces))
            self._pieces.clear()
            self._held = 0
        elif piece:
            self._pieces.append(piece)
            self._held += len(piece)

    def _finish(self, last: bytes) -> bytes | OverLong:
        """The current line, ended by ``last`` (its piece before the newline)."""
        if self._over is not None:
            over, self._over = self._over, None
            return OverLong(over.length + len(last), over.head)
        if not self._pieces:
            return self._capped(last)
        self._pieces.append(last)
        line = b"".join(self._pieces)
        self._pieces.clear()
        self._held = 0
        return self._capped(line)

    def _capped(self, line: bytes) -> bytes | OverLong:
        return OverLong(len(line), line[:_HEAD_BYTES]) if len(line) > self.max_line_bytes else line


def _head(pieces: list[bytes]) -> bytes:
    """The first ``_HEAD_BYTES`` of the pieces, joining only the pieces that reach into them."""
    taken: list[bytes] = []
    size = 0
    for piece in pieces:
        if size >= _HEAD_BYTES:
            break
        taken.append(piece[: _HEAD_BYTES - size])
        size += len(taken[-1])
    return b"".join(taken)


class Filter:
    """Turns one stdin record after another into pipeline input; remembers each stream's last type."""

    def __init__(
        self,
        pipeline: Pipeline,
        envelope: Envelope,
        forced_type: str | None,
        forced_format: str | None,
        host: str | None,
    ) -> None:
        self.pipeline = pipeline
        self.envelope = envelope
        self.forced_type = forced_type
        self.forced_format = forced_format
        self.host = host
        self.line_no = 0
        self._last: dict[str, tuple[str, str | None]] = {}
        self._awaited: set[str] = set()
        self._backlog = False

    def hold_backlog(self) -> None:
        """Hold every window while the records are a backlog (their time well behind the wall clock)."""
        self._backlog = True
        self.pipeline.input_behind(_BACKLOG, True)

    def backlog_check(self, now_ms: int, quiet_ms: int) -> list[Output]:
        """The records caught up with the wall clock, or stdin was quiet for ``idle_timeout``: live from here on."""
        if not self._backlog:
            return []
        join = self.pipeline.join
        idle_ms = join.settings.idle_timeout_ms
        newest_ms = join.watermarks.global_max_ts_ms
        if quiet_ms < idle_ms and not (newest_ms != NO_WATERMARK and newest_ms >= now_ms - idle_ms):
            return []
        self._backlog = False
        return self.pipeline.close_stream(_BACKLOG)

    def wait_for(self, log_types: tuple[str, ...]) -> None:
        """Hold the windows until a record of each of these types comes (or EOF): a stand-in stream per type,
        never idle, closed by the type's first record."""
        for log_type in log_types:
            self._awaited.add(log_type)
            self.pipeline.input_behind(_awaiting(log_type), True)

    def over_long(self, line: OverLong, max_line_bytes: int) -> list[Output]:
        """An over-long line: a dead letter with its length and first bytes (in = parsed + dead-lettered)."""
        self.line_no += 1
        source = SourceRef("stdin", self.line_no)
        self.pipeline.counters.lines_in += 1
        self.pipeline.counters.lines_dead_lettered += 1
        reason = f"line is {line.length} bytes, longer than {max_line_bytes >> 20} MiB: not a text log?"
        return [
            Output(
                "dead_letter", DeadLetter(source, reason, line.head.decode("utf-8", "surrogateescape") + "…"), source
            )
        ]

    def record(self, raw: bytes) -> list[Output]:
        self.line_no += 1
        source = SourceRef("stdin", self.line_no)
        unwrapped = self.envelope.unwrap(raw.rstrip(b"\r\n"), source)
        if isinstance(unwrapped, DeadLetter):
            self.pipeline.counters.lines_in += 1
            self.pipeline.counters.lines_dead_lettered += 1
            return [Output("dead_letter", unwrapped, source)]
        origin = unwrapped.extra.get("log_file") or "stdin"
        log_type, fmt = self.forced_type, self.forced_format
        if log_type is None:
            found = self.pipeline.parser.detect(unwrapped.text)
            previous = self._last.get(origin)
            if found is None and previous is not None and previous[0] in (NGINX_ERROR, PHP_FPM_SLOWLOG):
                found = previous  # a continuation line: it belongs to the entry before it
            if found is not None:
                log_type, fmt = found
                self._last[origin] = found
        # one stream per origin and type: each is ordered on its own, the join merges them in event time
        stream = f"{origin}#{log_type}" if log_type else origin
        out = self.pipeline.feed(
            Record(
                unwrapped.text,
                SourceRef(stream, self.line_no),
                log_type,
                unwrapped.host or self.host,
                fmt,
                1,
                unwrapped.extra.get("log_file"),
            )
        )
        if log_type in self._awaited:  # its own stream holds the windows from here on
            self._awaited.discard(log_type)
            out += self.pipeline.close_stream(_awaiting(log_type))
        return out


def _awaiting(log_type: str) -> str:
    return f"#awaiting {log_type}"


_BACKLOG = "#backlog"


def _lines(stream: BinaryIO) -> tuple[list[bytes], bool]:
    """What stdin has now (without blocking past a tick), and whether it reached EOF."""
    ready, _, _ = select.select([stream], [], [], _TICK_S)
    if not ready:
        return [], False
    chunk = os.read(stream.fileno(), 1 << 16)
    if not chunk:
        return [], True
    return [chunk], False


def filter_command(args: argparse.Namespace) -> int:
    check_outputs(
        {"stdout": "-", "--events": args.events, "--dead-letter": args.dead_letter, "--episodes": args.episodes},
        [],
        stdin_is_input=True,
    )
    pipeline, know = build_pipeline(args, emit_events=args.emit in ("events", "both"))
    filt = Filter(pipeline, Envelope(kind=args.envelope), args.type, know.forced_format, args.host)
    wait_for = tuple(t for t in (getattr(args, "wait_for", None) or ",".join(WAIT_FOR)).split(",") if t)
    filt.wait_for((args.type,) if args.type else wait_for)
    filt.hold_backlog()
    out = JsonLinesSink("-", line_buffered=True)
    dead = JsonLinesSink(args.dead_letter, line_buffered=True) if args.dead_letter else None
    events_file = JsonLinesSink(args.events, line_buffered=True) if args.events else None
    episodes_file = JsonLinesSink(args.episodes, line_buffered=True) if args.episodes else None
    router = Router(
        {
            "incident": out if args.emit in ("incidents", "both") else None,
            "event": events_file or out,
            "dead_letter": dead,
            "episode": episodes_file or (out if args.emit == "episodes" else None),
        }
    )

    def ship(outputs: list[Output], *, final: bool = False) -> None:
        router.ship(pipeline.episode_outputs(outputs, final=final))

    def line(raw: bytes | OverLong) -> None:
        ship(filt.over_long(raw, buffer.max_line_bytes) if isinstance(raw, OverLong) else filt.record(raw))

    stdin = sys.stdin.buffer
    buffer = LineBuffer()
    last_data_ms = int(time.time() * 1000)
    try:
        while True:
            chunks, eof = _lines(stdin)
            for chunk in chunks:
                for raw in buffer.feed(chunk):
                    line(raw)
            now_ms = int(time.time() * 1000)
            if chunks:
                last_data_ms = now_ms
            ship(filt.backlog_check(now_ms, now_ms - last_data_ms))
            ship(pipeline.tick(now_ms))
            if eof:
                break
        if (last := buffer.flush()) is not None:
            line(last)
        ship(pipeline.flush(), final=True)
    finally:
        router.close()
    c = pipeline.counters
    print(
        f"badgateway filter: lines in {c.lines_in} = parsed {c.lines_parsed} + dead-lettered "
        f"{c.lines_dead_lettered}; incidents {c.incidents}",
        file=sys.stderr,
    )
    if c.evicted:
        print(
            f"badgateway filter: warning: {c.evicted} windows closed early (more than max_state "
            f"{pipeline.settings.join.max_state} held): their incidents may lack evidence that came later; "
            "merge the logs in time, or feed fewer at once",
            file=sys.stderr,
        )
    return 0
