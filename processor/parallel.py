"""Parallel replay: every input file is read and parsed in its own process, the join stays in this one.

Workers keep what the join needs (502/504 access lines, error-log anchors, PHP-FPM lines, dead letters) and
reduce the healthy rest to progress marks (a stream's event time so far), so little crosses the process
boundary. The merge in event time, the join and the outputs are the same as in ``processor.replay``.
Workers are forked (their pipeline is the parent's, no pickling of grammars); pipes give back-pressure.
"""

from __future__ import annotations

import heapq
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from processor.causes import is_anchor
from processor.events import FAILURE_STATUSES, NGINX_ACCESS, NGINX_ERROR, PHP_FPM, DeadLetter, Event
from processor.io.sinks import Sink
from processor.pipeline import Output, Pipeline
from processor.replay import Plan, ReplayResult, _records
from processor.summary import ReplayStats

_BATCH = 2000
Item = tuple[int, Any]  # (merge key, Event | DeadLetter | ("progress", ts_ms))


def _wanted(ev: Event) -> bool:
    if ev.log_type == NGINX_ACCESS:
        return ev.fields.get("status") in FAILURE_STATUSES
    if ev.log_type == NGINX_ERROR:
        return is_anchor(ev.fields)
    return ev.log_type == PHP_FPM


def _work(pipeline: Pipeline, plan: Plan, conn: Connection) -> None:
    """In the child: parse one file, send batches of items, then the counters and the line count."""
    read = [0]
    batch: list[Item] = []
    last = -(2**62)
    skipped_since = False
    for item in pipeline.parse_stream(_records(plan, read, None), plan.file.display):
        if isinstance(item, DeadLetter):
            batch.append((last, item))
        else:
            last = max(last, item.ts_ms)
            if _wanted(item):
                batch.append((last, item))
                skipped_since = False
            else:
                skipped_since = True
        if len(batch) >= _BATCH or (skipped_since and read[0] % _BATCH == 0):
            if skipped_since:
                batch.append((last, ("progress", last)))
                skipped_since = False
            conn.send(batch)
            batch = []
    if skipped_since:
        batch.append((last, ("progress", last)))
    conn.send(batch)
    c = pipeline.counters
    conn.send(("done", read[0], c.lines_in, c.lines_parsed, c.lines_dead_lettered, c.blank_lines,
               dict(c.events_by_type)))
    conn.close()


def replay_parallel(pipeline: Pipeline, plans: list[Plan], sink: Sink,
                    progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Like ``replay``, with one parse process per file."""
    stats = ReplayStats()
    result = ReplayResult(stats)
    stats.bytes_read = sum(p.file.size_bytes for p in plans)
    started = time.perf_counter()
    ctx = mp.get_context("fork")
    conns: list[Connection] = []
    procs = []
    for plan in plans:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_work, args=(pipeline, plan, child), daemon=True)
        proc.start()
        child.close()
        conns.append(parent)
        procs.append(proc)
    queues: list[deque[Item]] = [deque() for _ in plans]
    done = [False] * len(plans)
    dead_lines = [0] * len(plans)

    def emit(outputs: list[Output]) -> None:
        for out in outputs:
            if out.kind == "incident":
                result.incidents += 1
            else:
                result.dead_letters += out.kind == "dead_letter"
            sink.write(out)

    def head(i: int) -> Item | None:
        while not queues[i] and not done[i]:
            msg = conns[i].recv()
            if isinstance(msg, tuple) and msg[0] == "done":
                _, lines, lines_in, parsed, dead, blank, by_type = msg
                c = pipeline.counters
                c.lines_in += lines_in
                c.lines_parsed += parsed
                c.lines_dead_lettered += dead
                c.blank_lines += blank
                for k, v in by_type.items():
                    c.events_by_type[k] = c.events_by_type.get(k, 0) + v
                plan = plans[i]
                stats.add(plan.file.display, plan.log_type, parsed=lines - dead_lines[i], dead_lettered=dead_lines[i])
                done[i] = True
                emit(pipeline.close_stream(plan.file.display))
            else:
                queues[i].extend(msg)
        return queues[i][0] if queues[i] else None

    heap: list[tuple[int, int]] = []
    for i in range(len(plans)):
        first = head(i)
        if first is not None:
            heap.append((first[0], i))
    heapq.heapify(heap)
    for first_ts, i in heap:
        pipeline.declare_stream(plans[i].file.display, first_ts)
    try:
        while heap:
            _, i = heapq.heappop(heap)
            key, item = queues[i].popleft()
            plan = plans[i]
            if isinstance(item, DeadLetter):
                dead_lines[i] += item.line_count
                emit([Output("dead_letter", item, item.source)])
            elif isinstance(item, Event):
                stats.see_ts(item.ts_ms)
                emit(pipeline.process_event(item))
            else:  # ("progress", ts_ms): healthy lines parsed in the worker
                emit(pipeline.join_progress(plan.file.display, item[1], plan.log_type, plan.host))
            nxt = head(i)
            if nxt is not None:
                heapq.heappush(heap, (nxt[0], i))
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    emit(pipeline.flush())
    stats.elapsed_s = time.perf_counter() - started
    stats.late = pipeline.counters.late_incidents
    if stats.first_ts_ms is None:
        stats.first_ts_ms = None
    del progress
    return result
