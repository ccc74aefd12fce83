"""``badgateway filter``: records on stdin, incidents (and/or events) on stdout, line by line.

A drop-in for Logstash's ``pipe`` output/input or any Unix pipeline: raw lines or shipper JSON envelopes
(Filebeat, Vector, Fluent Bit), the log type given (``--type``) or detected per record; continuation lines of a
multi-line NGINX error entry follow the entry before them. Windows close on event time and, when stdin goes
quiet, on wall-clock idleness; EOF closes them all.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time
from typing import BinaryIO

from processor.commands import build_pipeline
from processor.events import DeadLetter, NGINX_ERROR, PHP_FPM_SLOWLOG, Record, SourceRef
from processor.io.envelopes import Envelope
from processor.io.sinks import JsonLinesSink
from processor.pipeline import Output, Pipeline

_TICK_S = 0.25


class Filter:
    """Turns one stdin record after another into pipeline input; remembers each stream's last type."""

    def __init__(self, pipeline: Pipeline, envelope: Envelope, forced_type: str | None,
                 forced_format: str | None, host: str | None) -> None:
        self.pipeline = pipeline
        self.envelope = envelope
        self.forced_type = forced_type
        self.forced_format = forced_format
        self.host = host
        self.line_no = 0
        self._last: dict[str, tuple[str, str | None]] = {}

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
        return self.pipeline.feed(Record(unwrapped.text, SourceRef(stream, self.line_no), log_type,
                                         unwrapped.host or self.host, fmt, 1, unwrapped.extra.get("log_file")))


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
    pipeline, know = build_pipeline(args, emit_events=args.emit in ("events", "both"))
    filt = Filter(pipeline, Envelope(kind=args.envelope), args.type, know.forced_format, args.host)
    out = JsonLinesSink("-", line_buffered=True)
    dead = JsonLinesSink(args.dead_letter, line_buffered=True) if args.dead_letter else None
    events_file = JsonLinesSink(args.events, line_buffered=True) if args.events else None
    want_incidents = args.emit in ("incidents", "both")

    def ship(outputs: list[Output]) -> None:
        for o in outputs:
            if o.kind == "incident" and want_incidents:
                out.write(o)
            elif o.kind == "event":
                (events_file or out).write(o)
            elif o.kind == "dead_letter" and dead is not None:
                dead.write(o)

    stdin = sys.stdin.buffer
    pending = b""
    try:
        while True:
            chunks, eof = _lines(stdin)
            for chunk in chunks:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    ship(filt.record(raw))
            ship(pipeline.tick(int(time.time() * 1000)))
            if eof:
                break
        if pending:
            ship(filt.record(pending))
        ship(pipeline.flush())
    finally:
        for sink in (out, dead, events_file):
            if sink is not None:
                sink.close()
    c = pipeline.counters
    print(f"badgateway filter: lines in {c.lines_in} = parsed {c.lines_parsed} + dead-lettered "
          f"{c.lines_dead_lettered}; incidents {c.incidents}", file=sys.stderr)
    return 0
