"""Parallel replay: every input file is read and parsed in its own process, the join stays in this one.

Workers keep what the join needs (502/504 access lines, error-log anchors, PHP-FPM lines, dead letters) and
reduce the healthy rest to progress marks (a stream's event time so far), so little crosses the process
boundary. The merge in event time, the join and the outputs are the same as in ``processor.runners.replay``.
Workers are forked (their pipeline is the parent's, no pickling of grammars); pipes give back-pressure.
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import time
from collections import Counter, deque
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from processor.core.errors import BadgatewayError
from processor.core.events import (
    FAILURE_STATUSES,
    NGINX_ACCESS,
    NGINX_ERROR,
    PHP_FPM,
    DeadLetter,
    Event,
)
from processor.core.watermark import NO_WATERMARK
from processor.diagnosis.causes import is_anchor
from processor.io.sinks import Sink
from processor.pipeline import HealthyRun, Output, Pipeline
from processor.runners.replay import UNKNOWN_TYPE, Plan, ReplayResult, block_lines, parse_blocks, parse_file, replay
from processor.runners.stats import ReplayStats
from processor.runners.units import Unit, range_lines, range_records, range_start, units_for

_BATCH = 2000
MAX_UNITS = 64  # parse processes at most, whatever the number of files (see max_units)
Item = tuple[int, Any]  # (merge key, Event | DeadLetter | ("progress", ts_ms))


def _wanted(ev: Event) -> bool:
    if ev.log_type == NGINX_ACCESS:
        return ev.fields.get("status") in FAILURE_STATUSES
    if ev.log_type == NGINX_ERROR:
        return is_anchor(ev.fields)
    return ev.log_type == PHP_FPM


def _work(pipeline: Pipeline, plan: Plan, unit: Unit, conn: Connection) -> None:
    """In the child: parse one unit, send batches of items, then the counters and the line count; a user
    error (a truncated archive) goes to the parent as ``("error", message)``, to be reported in one line."""
    try:
        _parse_unit(pipeline, plan, unit, conn)
    except BadgatewayError as exc:
        conn.send(("error", str(exc)))
        conn.close()


def _parse_unit(pipeline: Pipeline, plan: Plan, unit: Unit, conn: Connection) -> None:
    read = [0]
    batch: list[Item] = []
    last = NO_WATERMARK
    skipped_since = False
    # healthy access lines in blocks: their runs only move ``last``; progress marks go where they went when
    # every line was an item (after each line whose count in the unit is a multiple of _BATCH)
    blocks = pipeline.takes_blocks(plan.log_type, plan.access_format)
    base = 0  # lines before the unit's first: an item's count in the unit is its line number - base
    items: Iterator[Event | DeadLetter | HealthyRun]
    if unit.end is None:
        items = parse_file(pipeline, plan, read, block_lines([plan]))
    elif blocks:
        start, base = range_start(plan, unit)
        read[0] = base
        items = parse_blocks(pipeline, plan, range_lines(plan, unit, start, base), read, block_lines([plan]))
    else:
        items = pipeline.parse_stream(range_records(plan, unit, read), plan.file.display)
    for item in items:
        if isinstance(item, HealthyRun):
            last = max(last, item.ts_ms)
            first = item.offset - base
            end = first + item.lines - 1
            mark = -(-first // _BATCH) * _BATCH or _BATCH  # the first multiple of _BATCH in the run
            skipped_since = True
            while mark <= end:
                batch.append((last, ("progress", last)))
                conn.send(batch)
                batch = []
                skipped_since = mark < end
                mark += _BATCH
            continue
        if isinstance(item, DeadLetter):
            batch.append((last, item))
        else:
            last = max(last, item.ts_ms)
            if _wanted(item):
                batch.append((last, item))
                skipped_since = False
            else:
                skipped_since = True
        count = item.source.offset - base if blocks else read[0]
        if len(batch) >= _BATCH or (skipped_since and count % _BATCH == 0 and count):
            if skipped_since:
                batch.append((last, ("progress", last)))
                skipped_since = False
            conn.send(batch)
            batch = []
    if skipped_since:
        batch.append((last, ("progress", last)))
    conn.send(batch)
    c = pipeline.counters
    conn.send(
        (
            "done",
            read[0] - base,
            c.lines_in,
            c.lines_parsed,
            c.lines_dead_lettered,
            c.blank_lines,
            dict(c.events_by_type),
        )
    )
    conn.close()


def max_units(workers: int) -> int:
    """How many parse processes a replay with ``workers`` may start: one per file cannot hold for a directory
    of thousands of rotated logs (a process, a pipe and an open file each, all at once)."""
    return max(MAX_UNITS, 4 * workers)


def replay_parallel(pipeline: Pipeline, plans: list[Plan], sink: Sink, workers: int) -> ReplayResult:
    """Like ``replay``, with parse processes: one per file, big plain access logs cut in ``workers`` ranges.
    More units than ``max_units`` are parsed in this process (``replay``): the same answer, no process each."""
    units = units_for(plans, workers)
    if len(units) > max_units(workers):
        return replay(pipeline, plans, sink)
    stats = ReplayStats()
    result = ReplayResult(stats)
    stats.bytes_read = sum(p.file.size_bytes for p in plans)
    started = time.perf_counter()
    ctx = mp.get_context("fork")
    conns: list[Connection] = []
    procs = []
    for unit in units:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_work, args=(pipeline, plans[unit.plan_index], unit, child), daemon=True)
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    queues: list[deque[Item]] = [deque() for _ in units]
    waiting = {conn: j for j, conn in enumerate(conns)}  # the workers not done, by connection
    done = [False] * len(units)
    dead_lines = [0] * len(units)
    # a file cut in ranges ends (stops holding the watermark) when its last range does
    units_of = Counter(u.plan_index for u in units)
    open_units = [units_of[i] for i in range(len(plans))]
    finished = [0] * len(units)
    closed = [False] * len(units)

    def emit(outputs: list[Output]) -> None:
        result.ship(pipeline.episode_outputs(outputs), sink)

    def receive(j: int) -> None:
        try:
            msg = conns[j].recv()
        except EOFError:
            procs[j].join(5)
            raise BadgatewayError(
                f"{plans[units[j].plan_index].file.display}: its parse worker stopped (exit code {procs[j].exitcode})"
            ) from None
        if isinstance(msg, tuple) and msg[0] == "error":
            raise BadgatewayError(msg[1])
        if isinstance(msg, tuple) and msg[0] == "done":
            _, lines, lines_in, parsed, dead, blank, by_type = msg
            c = pipeline.counters
            c.lines_in += lines_in
            c.lines_parsed += parsed
            c.lines_dead_lettered += dead
            c.blank_lines += blank
            for k, v in by_type.items():
                c.events_by_type[k] = c.events_by_type.get(k, 0) + v
            finished[j] = lines
            done[j] = True
            del waiting[conns[j]]
        else:
            queues[j].extend(msg)

    def head(i: int) -> Item | None:
        """Unit i's next item. While waiting, read every worker that has something: a worker whose range
        comes later in event time must not stall on a full pipe (that would serialise the parsing)."""
        while not queues[i] and not done[i]:
            for conn in wait(list(waiting)):
                receive(waiting[conn])  # type: ignore[index]
        if not queues[i] and done[i] and not closed[i]:
            closed[i] = True
            p = units[i].plan_index
            plan = plans[p]
            lines = finished[i]
            stats.add(
                plan.file.display,
                plan.log_type or UNKNOWN_TYPE,
                parsed=lines - dead_lines[i],
                dead_lettered=dead_lines[i],
            )
            open_units[p] -= 1
            if open_units[p] == 0:
                emit(pipeline.close_stream(plan.file.display))
        return queues[i][0] if queues[i] else None

    heap: list[tuple[int, int]] = []
    try:
        for i in range(len(units)):
            first = head(i)
            if first is not None:
                heap.append((first[0], i))
    except BaseException:
        _kill(procs)  # a worker's error ends the run: the others need not finish
        raise
    heapq.heapify(heap)
    # a file cut in ranges is one stream: it starts at its earliest range's first entry (declaring it at a
    # later range's made every failure of the earlier ranges late: #18)
    first_of: dict[int, int] = {}
    for first_ts, i in heap:
        p = units[i].plan_index
        first_of[p] = min(first_ts, first_of.get(p, first_ts))
    for p, first_ts in sorted(first_of.items()):
        pipeline.declare_stream(plans[p].file.display, first_ts)
    units_by_plan: dict[int, list[int]] = {}
    for i, unit in enumerate(units):
        units_by_plan.setdefault(unit.plan_index, []).append(i)

    def next_of_file(p: int, i: int, key: int) -> int:
        """The file's next entry: the least head of its open ranges (unit ``i``'s is ``key``)."""
        for j in units_by_plan[p]:
            if j != i and not closed[j]:
                other = head(j)
                if other is not None and other[0] < key:
                    key = other[0]
        return key

    try:
        while heap:
            _, i = heapq.heappop(heap)
            key, item = queues[i].popleft()
            plan = plans[units[i].plan_index]
            if isinstance(item, DeadLetter):
                dead_lines[i] += item.line_count
                emit([Output("dead_letter", item, item.source)])
            elif isinstance(item, Event):
                stats.see_ts(item.ts_ms)
                emit(pipeline.process_event(item))
            else:  # ("progress", ts_ms): healthy lines parsed in the worker
                emit(pipeline.join_progress(plan.file.display, item[1], plan.log_type or UNKNOWN_TYPE, plan.host))
            nxt = head(i)
            if nxt is not None:
                # it waits in the merge, not idle; a range ahead of its file's others does not move the file
                nxt_ts = nxt[0] if units_of[units[i].plan_index] == 1 else next_of_file(units[i].plan_index, i, nxt[0])
                pipeline.stream_at(plan.file.display, nxt_ts)
                heapq.heappush(heap, (nxt[0], i))
    except BaseException:
        _kill(procs)
        raise
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    result.ship(pipeline.episode_outputs(pipeline.flush(), final=True), sink)
    stats.elapsed_s = time.perf_counter() - started
    stats.late = pipeline.counters.late_incidents
    return result


def _kill(procs: list[Any]) -> None:
    for proc in procs:
        if proc.is_alive():
            proc.kill()
