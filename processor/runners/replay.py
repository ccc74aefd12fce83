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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import islice
from typing import Protocol

from processor.core.errors import InputError
from processor.core.events import NGINX_ACCESS, DeadLetter, Event, Record, SourceRef
from processor.core.watermark import NO_WATERMARK
from processor.io.discovery import discover
from processor.io.files import InputFile, head_lines, open_lines
from processor.io.sinks import Sink
from processor.pipeline import HealthyRun, Output, Pipeline
from processor.runners.stats import ReplayStats

UNKNOWN_TYPE = "unknown"  # the summary's name for the lines of a file typed line by line
_ROTATION = re.compile(r"(\.\d+)?(\.(gz|bz2|xz|zst))?$|-\d{8}(\.(gz|bz2|xz|zst))?$")
# Lines per scanned block: a stream holds its current block while the merge serves the others, so the
# blocks of all the streams together stay near _HELD_LINES (a few tens of MB), within these bounds.
_BLOCK_LINES = 2048
_MIN_BLOCK_LINES = 32
_HELD_LINES = 1 << 18


class ProgressSink(Protocol):
    """What a replay tells a progress display (the CLI's bar): bytes read since the last call, and where to ask
    for the lines read so far."""

    def advance(self, bytes_: int = 0, lines: int = 0) -> None: ...

    def count_lines(self, lines_so_far: Callable[[], int]) -> None: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """One input file and what it holds."""

    file: InputFile
    log_type: str | None  # None: typed line by line (a file whose type could not be told)
    access_format: str | None
    host: str


@dataclass
class ReplayResult:
    """What a replay did: per-file line counts and the run's totals (for the summary and the report)."""

    stats: ReplayStats
    incidents: int = 0
    dead_letters: int = 0
    episodes: int = 0

    def ship(self, outputs: list[Output], sink: Sink) -> None:
        """Count each output by kind and hand it to the sink."""
        for out in outputs:
            if out.kind == "incident":
                self.incidents += 1
            elif out.kind == "episode":
                self.episodes += 1
            elif out.kind == "dead_letter":
                self.dead_letters += 1
            sink.write(out)


def base_name(path: str) -> str:
    """``access.log.2.gz`` → ``access.log``: rotated copies share the live file's format and type."""
    name = os.path.basename(path)
    return _ROTATION.sub("", name) or name


def plan_inputs(
    pipeline: Pipeline,
    paths: Sequence[str | InputFile],
    *,
    forced_type: str | None = None,
    format_by_path: dict[str, str] | None = None,
    forced_format: str | None = None,
    host: str | None = None,
    host_pattern: str | None = None,
    on_unknown: Callable[[InputFile, str], None] | None = None,
) -> list[Plan]:
    """Find the files (or take those already found) and decide each one's log type (detected unless forced)
    and access format. A file whose type cannot be told (empty, or no line of its head matches a grammar)
    raises ``InputError``; with ``on_unknown`` it is told so and planned with no type instead: each of its
    lines is typed on its own, and those no grammar takes are dead-lettered (an empty rotated log, a stray
    file in a log directory must not stop the replay of the rest)."""
    pattern = re.compile(host_pattern) if host_pattern else None
    by_base = {base_name(p): f for p, f in (format_by_path or {}).items()}
    plans: list[Plan] = []
    names = [p for p in paths if isinstance(p, str)]
    found = [p for p in paths if isinstance(p, InputFile)] + (discover(names) if names else [])
    for f in found:
        fmt = forced_format or by_base.get(base_name(f.path))
        log_type = forced_type
        if log_type is None:
            try:
                log_type, detected_fmt = _detect(pipeline, f, fmt)
            except InputError as exc:
                if on_unknown is None:
                    raise
                on_unknown(f, exc.reason)
                detected_fmt = None
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
        raise InputError(
            f.display,
            "cannot tell which log this is (no line of its first 50 matches a grammar);"
            " pass --type and, for access logs, --log-format",
        )
    (log_type, detected), _ = votes.most_common(1)[0]
    return log_type, fmt or detected


def _records(plan: Plan, read: list[int], on_bytes: Callable[[int], None] | None) -> Iterator[Record]:
    name = plan.file.display
    for line_no, raw in open_lines(plan.file, on_bytes=on_bytes):
        read[0] = line_no
        yield Record(
            raw.decode("utf-8", "surrogateescape"),
            SourceRef(name, line_no),
            plan.log_type,
            plan.host,
            plan.access_format,
        )


def block_lines(plans: Sequence[Plan]) -> int:
    """Lines per block for a replay of these files (fewer when many files each hold one)."""
    return max(_MIN_BLOCK_LINES, min(_BLOCK_LINES, _HELD_LINES // max(1, len(plans))))


def parse_blocks(
    pipeline: Pipeline, plan: Plan, lines: Iterable[tuple[int, bytes]], read: list[int], size: int
) -> Iterator[Event | DeadLetter | HealthyRun]:
    """``pipeline.parse_stream`` of a file's numbered lines, read ``size`` at a time and scanned as blocks
    (``Pipeline.parse_block``): healthy access lines come as runs. ``read[0]``: the last line number read."""
    name, log_type, access_format, host = plan.file.display, plan.log_type, plan.access_format, plan.host
    parse_block = pipeline.parse_block
    it = iter(lines)
    while chunk := list(islice(it, size)):
        read[0] = chunk[-1][0]
        # one decode for the block: no line holds a newline, and undecodable bytes escape one by one either way
        block = b"\n".join([raw for _, raw in chunk]).decode("utf-8", "surrogateescape")
        yield from parse_block(name, log_type, access_format, host, chunk[0][0], block, len(chunk))


def parse_file(
    pipeline: Pipeline,
    plan: Plan,
    read: list[int],
    size: int,
    on_bytes: Callable[[int], None] | None = None,
    *,
    blocks: bool = True,
) -> Iterator[Event | DeadLetter | HealthyRun]:
    """One whole file's events, dead letters and healthy runs, in line order: read ``size`` lines at a time as
    blocks where the pipeline takes them (``blocks``), else record by record. ``read[0]``: the last line read."""
    if blocks and pipeline.takes_blocks(plan.log_type, plan.access_format):
        return parse_blocks(pipeline, plan, open_lines(plan.file, on_bytes=on_bytes), read, size)
    return pipeline.parse_stream(_records(plan, read, on_bytes), plan.file.display)


def replay(
    pipeline: Pipeline, plans: list[Plan], sink: Sink, *, progress: ProgressSink | None = None, blocks: bool = True
) -> ReplayResult:
    """Drive the pipeline over the planned files, merged in event time; every output goes to ``sink``.

    ``blocks``: read healthy access lines in blocks where the pipeline takes them (``Pipeline.takes_blocks``:
    no events asked for): the same outputs and counters as record by record, which ``blocks=False`` does.
    A run of healthy lines of one time is one item of the merge: its lines share their merge key, so
    record by record they would be joined one after the other, with no other stream's in between.
    """
    stats = ReplayStats()
    result = ReplayResult(stats)
    stats.bytes_read = sum(p.file.size_bytes for p in plans)
    started = time.perf_counter()
    lines_read = [[0] for _ in plans]
    dead_lines = [0] * len(plans)
    on_bytes = (lambda n: progress.advance(n, 0)) if progress is not None else None
    if progress is not None:
        progress.count_lines(lambda: sum(read[0] for read in lines_read))
    size = block_lines(plans)
    streams = [parse_file(pipeline, p, lines_read[i], size, on_bytes, blocks=blocks) for i, p in enumerate(plans)]
    names = [p.file.display for p in plans]
    heap: list[tuple[int, int, Event | HealthyRun]] = []
    last_ts = [NO_WATERMARK] * len(streams)

    def emit(outputs: list[Output]) -> None:
        result.ship(pipeline.episode_outputs(outputs), sink)

    def pull(i: int) -> tuple[int, Event | HealthyRun] | None:
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
        stats.add(
            plan.file.display, plan.log_type or UNKNOWN_TYPE, parsed=read - dead_lines[i], dead_lettered=dead_lines[i]
        )
        emit(pipeline.close_stream(plan.file.display))
        return None

    for i in range(len(streams)):
        first = pull(i)
        if first is not None:
            heapq.heappush(heap, (first[0], i, first[1]))
    for first_ts, i, _ in heap:
        pipeline.declare_stream(plans[i].file.display, first_ts)
    process = pipeline.process_event
    process_run = pipeline.process_healthy_run
    see_ts = stats.see_ts
    while heap:
        _, i, event = heapq.heappop(heap)
        name = names[i]
        while True:
            see_ts(event.ts_ms)
            outputs = process_run(name, event) if type(event) is HealthyRun else process(event)  # type: ignore[arg-type]
            if outputs:
                emit(outputs)
            nxt = pull(i)
            if nxt is None:
                break
            key, event = nxt
            # the common case: the same file is still the oldest — no heap traffic
            if heap and (key > (top := heap[0])[0] or (key == top[0] and i > top[1])):
                pipeline.stream_at(name, key)  # it waits in the merge, not idle
                heapq.heappush(heap, (key, i, event))
                break
    result.ship(pipeline.episode_outputs(pipeline.flush(), final=True), sink)
    stats.elapsed_s = time.perf_counter() - started
    stats.late = pipeline.counters.late_incidents
    return result


def learn_host_timezones(pipeline: Pipeline, plans: list[Plan]) -> dict[str, tzinfo]:
    """The UTC offset each host's access log writes (``$time_local`` carries it): NGINX error and PHP-FPM
    logs on that host are written in the same local time, without saying so."""
    zones: dict[str, tzinfo] = {}
    for plan in plans:
        if plan.log_type != NGINX_ACCESS or plan.host in zones:
            continue
        for raw in head_lines(plan.file, 20):
            record = Record(
                raw.decode("utf-8", "surrogateescape"),
                SourceRef(plan.file.display, 0),
                plan.log_type,
                plan.host,
                plan.access_format,
            )
            parsed = pipeline.parser.parse(record)
            if isinstance(parsed, Event):
                when = parsed.fields.get("time")
                if isinstance(when, datetime) and when.tzinfo is not None:
                    zones[plan.host] = when.tzinfo
                    break
    return zones
