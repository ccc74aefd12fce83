"""The Kafka service's per-record work without Kafka: a batch as one block of lines → ``Pipeline.feed_block``.

Replicates ``Service._handle`` (processor/runners/service.py) over ``make_lines`` values in batches of 2000 (a poll), events off (the default service
config), and prints lines/s and µs/line; the "bare regex" line is one ``re.match`` of the same format per line.

    .venv/bin/python benchmarks/bench_pipeline_hot.py             # 200k lines, best of 5
    .venv/bin/python benchmarks/bench_pipeline_hot.py -n 500000 --runs 3 --events
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_kafka_bare import make_lines  # noqa: E402
from bench_service import LOG_FORMAT  # noqa: E402

from processor.io.kafka.inputs import InputReader  # noqa: E402
from processor.pipeline import Pipeline  # noqa: E402
from processor.runners.service import pipeline_factory  # noqa: E402
from processor.runners.service_config import load_config  # noqa: E402

SETS = [
    "kafka.bootstrap_servers=127.0.0.1:1",
    "inputs.0.topic=in",
    "inputs.0.type=nginx_access",
    "inputs.0.envelope=raw",
    "inputs.0.host_from=fixed:web-1",
    "outputs.incidents_topic=i",
    "outputs.dead_letter_topic=d",
    f"diagnosis.log_format={LOG_FORMAT}",
    "metrics.port=0",
]


class _Rec:
    """What kafka-python hands the service per record (the fields ``_handle`` reads)."""

    __slots__ = ("topic", "partition", "offset", "value", "key", "headers")

    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value
        self.key = value.split(b" ", 1)[0]
        self.headers: list[tuple[str, bytes]] = []


def handle(pipeline: Pipeline, reader: InputReader, records: list[_Rec]) -> tuple[int, int]:
    """``Service._handle``'s work: the batch as one block (``Envelope.block`` → ``Pipeline.feed_block``, as
    ``Feeder.feed``), else raw lines of one partition → ``Pipeline.feed_lines``; (incidents, dead letters)."""
    got = None
    block = reader.envelope.block([rec.value for rec in records])
    if block is not None and pipeline.takes_blocks(reader.log_type, reader.access_format):
        got = pipeline.feed_block(
            records[0].topic,
            records[0].partition,
            reader.log_type,
            reader.access_format,
            reader.hosts(records),
            [rec.offset for rec in records],  # type: ignore[arg-type]
            block.decode("utf-8", "surrogateescape"),
        )
    if got is None:
        raw_text = reader.envelope.raw_text
        lines: list[tuple[int, str, str | None]] = []
        for rec in records:
            text = raw_text(rec.value)
            if text is None:
                raise SystemExit("the benchmark's records are plain raw lines")
            lines.append((rec.offset, text, reader.host(None, rec)))  # type: ignore[arg-type]
        got = pipeline.feed_lines(records[0].topic, records[0].partition, reader.log_type, reader.access_format, lines)
    incidents = dead = 0
    for _, outputs in got:
        for out in outputs:
            if out.kind == "incident":
                incidents += 1
            elif out.kind == "dead_letter":
                dead += 1
    return incidents, dead


def bare_regex(lines: list[bytes], pipeline: Pipeline, fmt_name: str) -> float:
    fmt = pipeline.parser.format_named(fmt_name)
    assert fmt is not None and fmt.fast is not None
    match = fmt.fast.pattern.match
    texts = [line.decode() for line in lines]
    started = time.perf_counter()
    for text in texts:
        match(text)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", action="store_true", help="emit_events=True (an events topic configured)")
    ap.add_argument(
        "--failure-share",
        type=float,
        default=None,
        help="share of 502/504 lines, e.g. 0.003 (default: about 3.3%%, an outage's mix)",
    )
    args = ap.parse_args()
    sets = SETS + (["outputs.events_topic=e"] if args.events else [])
    cfg = load_config(None, sets, environ={})
    new_pipeline, forced = pipeline_factory(cfg)
    reader = InputReader(cfg.inputs[0], cfg.delivery.max_record_bytes, forced)
    values = make_lines(args.n, failure_share=args.failure_share)
    records = [_Rec("in", 0, i, v) for i, v in enumerate(values)]
    gc.collect()  # the collector as Service.run sets it
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    best = float("inf")
    for _ in range(args.runs):
        pipeline = new_pipeline()
        started = time.perf_counter()
        incidents = dead = 0
        for at in range(0, len(records), 2000):
            got = handle(pipeline, reader, records[at : at + 2000])
            incidents, dead = incidents + got[0], dead + got[1]
        incidents += len(pipeline.flush())
        best = min(best, time.perf_counter() - started)
    us = best / args.n * 1e6
    print(
        f"pipeline hot loop: {args.n / best:,.0f} lines/s, {us:.2f} µs/line "
        f"(incidents {incidents}, dead letters {dead}, events {'on' if args.events else 'off'})"
    )
    regex_s = min(bare_regex(values, new_pipeline(), reader.access_format or "combined") for _ in range(3))
    print(
        f"bare regex: {args.n / regex_s:,.0f} lines/s, {regex_s / args.n * 1e6:.2f} µs/line; "
        f"pipeline at {regex_s / best:.1%} of it"
    )


if __name__ == "__main__":
    main()
