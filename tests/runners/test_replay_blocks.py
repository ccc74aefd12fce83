"""Replay reading healthy access lines in blocks gives what record-by-record replay gives (issue #23).

Blocks change how lines are read and parsed, never what the join sees: a run of healthy lines of one time is one
item of the event-time merge (its lines share their merge key). Each case compares every output in order
(incidents, dead letters), the counters and the per-file statistics with ``replay(blocks=False)``, with blocks
small enough that runs, failures and odd lines straddle them.
"""

from __future__ import annotations

import gzip
import os
import random
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from processor.cli.main import build_parser
from processor.pipeline import Output, Pipeline
from processor.runners import replay as replay_module
from processor.runners import units
from processor.runners.parallel import replay_parallel
from processor.runners.replay import learn_host_timezones, plan_inputs, replay
from processor.runners.settings import build_pipeline
from processor.runners.units import Unit, range_lines, range_records, range_start

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_mixed import generate  # noqa: E402

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"
CONF = [
    "--nginx-conf",
    str(LAB / "conf" / "nginx.conf"),
    *[a for c in sorted((LAB / "conf").glob("php-fpm*.conf")) for a in ("--fpm-conf", str(c))],
]


class ListSink:
    def __init__(self) -> None:
        self.outputs: list[Output] = []

    def write(self, out: Output) -> None:
        self.outputs.append(out)

    def close(self) -> None:
        return None


def _run(argv: list[str], *, blocks: bool, workers: int = 1) -> dict[str, Any]:
    """What ``badgateway replay ARGV`` computes, in memory: every output in order, counters, statistics."""
    args = build_parser().parse_args(["replay", "-q", "--no-progress", *argv])
    pipeline, knowledge = build_pipeline(args, emit_events=bool(args.events))
    plans = plan_inputs(
        pipeline,
        args.paths,
        forced_type=args.type,
        format_by_path=knowledge.format_by_path,
        forced_format=knowledge.forced_format,
        host=args.host,
        host_pattern=args.host_pattern,
    )
    if args.timezone is None:
        zones = learn_host_timezones(pipeline, plans)
        if zones:
            pipeline, _ = build_pipeline(args, emit_events=bool(args.events), knowledge=knowledge, host_timezones=zones)
    sink = ListSink()
    if workers > 1:
        result = replay_parallel(pipeline, plans, sink, workers)
    else:
        result = replay(pipeline, plans, sink, blocks=blocks)
    stats = asdict(result.stats)
    stats.pop("elapsed_s")
    return {
        "outputs": sink.outputs,
        "counters": asdict(pipeline.counters),
        "stats": stats,
        "tally": (result.incidents, result.dead_letters),
    }


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Blocks of a few lines, and a count of the healthy runs joined (a block path that never ran proves nothing)."""
    monkeypatch.setattr(replay_module, "_BLOCK_LINES", 7)
    monkeypatch.setattr(replay_module, "_MIN_BLOCK_LINES", 7)
    runs = [0]
    process_run = Pipeline.process_healthy_run

    def counted(self: Pipeline, stream: str, run: Any) -> list[Output]:
        runs[0] += 1
        return process_run(self, stream, run)

    monkeypatch.setattr(Pipeline, "process_healthy_run", counted)
    return runs


def _odd_logs(root: Path, seed: int) -> Path:
    """A mixed log set with what the scanner gives up on or leaves to the full parser: blank and whitespace
    lines, garbage (dead letters), invalid UTF-8 (alone and inside a line), a shipper prefix, a JSON line,
    CRLF endings, lines out of order, no final newline; and a second access log of a lagging host."""
    paths = generate(str(root), 6_000, seed=seed)
    rnd = random.Random(seed)
    lines = Path(paths["access"]).read_bytes().split(b"\n")[:-1]
    out: list[bytes] = []
    for i, line in enumerate(lines):
        roll = rnd.random()
        if roll < 0.004:
            out.append(b"")
        elif roll < 0.008:
            out.append(b"garbage \xff\xfe line")
        elif roll < 0.010:
            out.append(b"  \t")
        elif roll < 0.014 and i > 20:
            out.append(lines[i - 20])  # an earlier line again: out of order in its file
        elif roll < 0.016:
            out.append(b"<13>Nov 24 05:00:01 web-1 nginx: " + line)
        elif roll < 0.018:
            out.append(b'{"time_local": "24/Nov/2026:05:00:01 +0000", "status": "200"}')
        elif roll < 0.021:
            line += b"\r"
        elif roll < 0.023:
            line = line.replace(b"Mozilla", b"Mo\xc3zilla")
        out.append(line)
    Path(paths["access"]).write_bytes(b"\n".join(out))
    lagging = root / "lagging"
    lagging.mkdir()
    (lagging / "access.log").write_bytes(b"\n".join(lines[1_000:4_000:3]) + b"\n")
    return root


def test_the_lab_recording(small_blocks: list[int]) -> None:
    argv = [*CONF, str(LAB / "logs")]
    by_record = _run(argv, blocks=False)
    runs_before = small_blocks[0]
    assert _run(argv, blocks=True) == by_record
    assert small_blocks[0] > runs_before
    assert sum(1 for o in by_record["outputs"] if o.kind == "incident") == 41


@pytest.mark.parametrize("seed", [7, 11])
def test_a_generated_mixed_log(tmp_path: Path, small_blocks: list[int], seed: int) -> None:
    generate(str(tmp_path), 8_000, seed=seed)
    by_record = _run([str(tmp_path)], blocks=False)
    assert _run([str(tmp_path)], blocks=True) == by_record
    assert small_blocks[0] > 500
    assert sum(1 for o in by_record["outputs"] if o.kind == "incident") > 50


@pytest.mark.parametrize("seed", [3, 5])
def test_odd_lines_and_a_lagging_host(tmp_path: Path, small_blocks: list[int], seed: int) -> None:
    root = _odd_logs(tmp_path, seed)
    argv = ["--host-pattern", r"(?P<host>lagging)", str(root)]
    by_record = _run(argv, blocks=False)
    assert _run(argv, blocks=True) == by_record
    assert small_blocks[0] > 500
    assert sum(1 for o in by_record["outputs"] if o.kind == "dead_letter") > 20


def test_rotated_and_compressed_files(tmp_path: Path, small_blocks: list[int]) -> None:
    # a rotated set, the older file gzipped: blocks read the decompressed lines, numbered per file
    generate(str(tmp_path), 4_000, seed=13)
    lines = (tmp_path / "access.log").read_bytes().split(b"\n")
    with gzip.open(tmp_path / "access.log.1.gz", "wb") as fh:
        fh.write(b"\n".join(lines[:2_500]) + b"\n")
    (tmp_path / "access.log").write_bytes(b"\n".join(lines[2_500:]))
    by_record = _run([str(tmp_path)], blocks=False)
    assert _run([str(tmp_path)], blocks=True) == by_record
    assert small_blocks[0] > 200
    assert set(by_record["stats"]["by_file"]) >= {str(tmp_path / "access.log.1.gz"), str(tmp_path / "access.log")}


def test_the_default_block_size(tmp_path: Path) -> None:
    root = _odd_logs(tmp_path, 9)
    assert _run([str(root)], blocks=True) == _run([str(root)], blocks=False)


def test_with_events_every_line_is_an_event(tmp_path: Path) -> None:
    # --events: every line gives an event, so no block is read; the same events as record by record
    generate(str(tmp_path), 2_000)
    events = tmp_path / "events.jsonl"
    one = _run(["--events", str(events), str(tmp_path)], blocks=True)
    assert one == _run(["--events", str(events), str(tmp_path)], blocks=False)
    assert sum(1 for o in one["outputs"] if o.kind == "event") > 2_000


def test_parallel_workers_read_blocks_and_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # two workers, the access log cut in byte ranges (forked workers see the patched sizes): the same as one
    # process reading record by record
    monkeypatch.setattr(units, "_SPLIT_BYTES", 1 << 16)
    monkeypatch.setattr(replay_module, "_BLOCK_LINES", 13)
    monkeypatch.setattr(replay_module, "_MIN_BLOCK_LINES", 13)
    root = _odd_logs(tmp_path, 4)
    argv = ["--host-pattern", r"(?P<host>lagging)", str(root)]
    by_record = _run(argv, blocks=False)
    two = _run(argv, blocks=True, workers=2)
    assert two["outputs"] == by_record["outputs"]
    # (late healthy lines are not counted by workers, which join none: as before blocks)
    assert {**two["counters"], "late_records": 0} == {**by_record["counters"], "late_records": 0}
    assert two["stats"]["by_file"] == by_record["stats"]["by_file"]


@pytest.mark.parametrize("ending", [b"\n", b""])
def test_range_lines_are_range_records_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: bytes) -> None:
    # the block reader of a byte range gives the lines (numbers, CRLF cut) the record reader gives
    rnd = random.Random(len(ending))
    lines = [b"x" * rnd.randrange(0, 40) + (b"\r" if rnd.random() < 0.2 else b"") for _ in range(3_000)]
    path = tmp_path / "access.log"
    path.write_bytes(b"\n".join(lines) + ending)
    size = os.path.getsize(path)

    class File:
        display = "access.log"

    class Plan:
        file = File()
        log_type = "nginx_access"
        host = ""
        access_format = None

    File.path = str(path)  # type: ignore[attr-defined]
    monkeypatch.setattr(units, "CHUNK_BYTES", 1 << 10)  # several reads per range
    cuts = sorted({0, size, *(rnd.randrange(size) for _ in range(12))})
    for start, end in zip(cuts, cuts[1:]):
        unit = Unit(0, start, end)
        expected = [(r.source.offset, r.text.encode()) for r in range_records(Plan(), unit, [0])]  # type: ignore[arg-type]
        first, base = range_start(Plan(), unit)  # type: ignore[arg-type]
        assert list(range_lines(Plan(), unit, first, base)) == expected  # type: ignore[arg-type]
