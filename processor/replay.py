"""Batch replay: archived files → the same pipeline as the Kafka service → sinks.

Each file is one ordered stream. Files are parsed lazily and merged in event time (a k-way merge on
each stream's next event), so the join sees every input advance together, as in a live system.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from processor.errors import InputError
from processor.events import DeadLetter, Event, Record, SourceRef
from processor.io.files import InputFile, discover, head_lines, open_lines
from processor.io.sinks import Sink
from processor.pipeline import Output, Pipeline
from processor.progress import Progress
from processor.summary import ReplayStats

_ROTATION = re.compile(r"(\.\d+)?(\.(gz|bz2|xz|zst))?$|-\d{8}(\.(gz|bz2|xz|zst))?$")


@dataclass(frozen=True, slots=True)
class Plan:
    """One input file and what it holds."""

    file: InputFile
    log_type: str
    access_format: str | None
    host: str


@dataclass
class ReplayResult:
    """What a replay did: per-file line counts and the run's totals (for the summary and the report)."""

    stats: ReplayStats
    incidents: int = 0
    events_written: int = 0
    dead_letters: int = 0

    def ship(self, outputs: list[Output], sink: Sink) -> None:
        """Count each output by kind and hand it to the sink."""
        for out in outputs:
            if out.kind == "incident":
                self.incidents += 1
            elif out.kind == "event":
                self.events_written += 1
            else:
                self.dead_letters += 1
            sink.write(out)


def base_name(path: str) -> str:
    """``access.log.2.gz`` → ``access.log``: rotated copies share the live file's format and type."""
    name = os.path.basename(path)
    return _ROTATION.sub("", name) or name


def plan_inputs(
    pipeline: Pipeline,
    paths: Sequence[str],
    *,
    forced_type: str | None = None,
    format_by_path: dict[str, str] | None = None,
    forced_format: str | None = None,
    host: str | None = None,
    host_pattern: str | None = None,
) -> list[Plan]:
    """Find the files and decide each one's log type (detected unless forced) and access format."""
    pattern = re.compile(host_pattern) if host_pattern else None
    by_base = {base_name(p): f for p, f in (format_by_path or {}).items()}
    plans: list[Plan] = []
    for f in discover(list(paths)):
        fmt = forced_format or by_base.get(base_name(f.path))
        log_type = forced_type
        if log_type is None:
            log_type, detected_fmt = _detect(pipeline, f, fmt)
            fmt = fmt or detected_fmt
        file_host = host or ""
        if pattern is not None:
            m = pattern.search(f.path)
            if m is not None:
                file_host = m.groupdict().get("host") or m.group(0)
        plans.append(Plan(f, log_type, fmt, file_host))
    return plans


def _detect(pipeline: Pipeline, f: InputFile, fmt: str | None) -> tuple[str, str | None]:
    votes: Counter[tuple[str, str | None]] = Counter()
    for raw in head_lines(f, 50):
        text = raw.decode("utf-8", "surrogateescape")
        if not text.strip():
            continue
        found = pipeline.parser.detect(text)
        if found is not None:
            votes[found] += 1
    if not votes:
        raise InputError(f.display, "cannot tell which log this is (no line of its first 50 matches a grammar);"
                         " pass --type and, for access logs, --log-format")
    (log_type, detected), _ = votes.most_common(1)[0]
    return log_type, fmt or detected


def _records(plan: Plan, read: list[int], on_bytes: Callable[[int], None] | None) -> Iterator[Record]:
    name = plan.file.display
    for line_no, raw in open_lines(plan.file, on_bytes=on_bytes):
        read[0] = line_no
        yield Record(raw.decode("utf-8", "surrogateescape"), SourceRef(name, line_no), plan.log_type,
                     plan.host, plan.access_format)


def replay(pipeline: Pipeline, plans: list[Plan], sink: Sink, *, progress: Progress | None = None) -> ReplayResult:
    """Drive the pipeline over the planned files, merged in event time; every output goes to ``sink``."""
    stats = ReplayStats()
    result = ReplayResult(stats)
    stats.bytes_read = sum(p.file.size_bytes for p in plans)
    started = time.perf_counter()
    lines_read = [[0] for _ in plans]
    dead_lines = [0] * len(plans)
    on_bytes = (lambda n: progress.advance(n, 0)) if progress is not None else None
    streams = [pipeline.parse_stream(_records(p, lines_read[i], on_bytes), p.file.display)
               for i, p in enumerate(plans)]
    heap: list[tuple[int, int, Event]] = []
    last_ts = [-(2**62)] * len(streams)

    def emit(outputs: list[Output]) -> None:
        result.ship(outputs, sink)

    def pull(i: int) -> tuple[int, Event] | None:
        """Stream i's next event and its merge key; dead letters on the way are written at once."""
        for item in streams[i]:
            if isinstance(item, DeadLetter):
                dead_lines[i] += item.line_count
                emit([Output("dead_letter", item, item.source)])
                continue
            # a line out of order inside a file keeps its place: the join allows lateness
            key = last_ts[i] = max(item.ts_ms, last_ts[i])
            return key, item
        plan = plans[i]
        read = lines_read[i][0]
        stats.add(plan.file.display, plan.log_type, parsed=read - dead_lines[i], dead_lettered=dead_lines[i])
        emit(pipeline.close_stream(plan.file.display))
        return None

    for i in range(len(streams)):
        first = pull(i)
        if first is not None:
            heapq.heappush(heap, (first[0], i, first[1]))
    for first_ts, i, _ in heap:
        pipeline.declare_stream(plans[i].file.display, first_ts)
    process = pipeline.process_event
    while heap:
        _, i, event = heapq.heappop(heap)
        while True:
            stats.see_ts(event.ts_ms)
            outputs = process(event)
            if outputs:
                emit(outputs)
            nxt = pull(i)
            if nxt is None:
                break
            key, event = nxt
            # the common case: the same file is still the oldest — no heap traffic
            if heap and (key, i) > heap[0][:2]:
                pipeline.stream_at(plans[i].file.display, key)  # it waits in the merge, not idle
                heapq.heappush(heap, (key, i, event))
                break
    emit(pipeline.flush())
    stats.elapsed_s = time.perf_counter() - started
    stats.late = pipeline.counters.late_incidents
    return result
