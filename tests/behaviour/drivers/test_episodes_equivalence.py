"""One set of episodes from every driver (#21), on the lab recording: ``replay`` is the reference; ``replay
--workers 2``, ``filter --episodes`` (and ``--emit episodes``) fed the files one after the other, and ``follow``
reading the logs as they grow must give the same ``badgateway.episode`` records: same ids, sequences, states,
cutoffs and counts. ``run`` on the real broker: tests/io/test_service_episodes.py."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from processor.cli import main
from processor.io.sinks import serialise
from processor.runners.follow import Follower
from processor.runners.replay import base_name
from processor.runners.settings import build_pipeline
from tests.behaviour.drivers.lab_logs import CONF_ARGS, FILES, LAB, lab_copy
from tests.behaviour.drivers.test_equivalence import _timed_lines

REPO = Path(__file__).resolve().parents[3]


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def comparable(recs: list[dict[str, Any]], *, evidence: bool = True) -> list[dict[str, Any]]:
    """Every record, in (id, sequence) order; without the evidence lines when the driver cannot tell the PHP-FPM
    masters' logs apart (``filter``: one stream of raw lines, so an incident may cite another master's line)."""
    out = []
    for r in sorted(recs, key=lambda r: (r["episode"]["id"], r["episode"]["sequence"])):
        if not evidence:
            r = {**r, "episode": {k: v for k, v in r["episode"].items() if k != "evidence"}}
        out.append(r)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("lab")
    logs = lab_copy(tmp / "logs", "UTC")
    out = tmp / "episodes.jsonl"
    assert (
        main(
            [
                "replay",
                "-q",
                "--no-progress",
                "-o",
                str(tmp / "inc.jsonl"),
                "--episodes",
                str(out),
                *CONF_ARGS,
                str(logs),
            ]
        )
        == 0
    )
    expected = records(out.read_text())
    assert len({r["episode"]["id"] for r in expected}) == 15
    return logs, expected


def test_two_workers(lab: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    logs, expected = lab
    out = tmp_path / "w2.jsonl"
    assert (
        main(
            [
                "replay",
                "-q",
                "--no-progress",
                "-o",
                str(tmp_path / "i.jsonl"),
                "--episodes",
                str(out),
                "--workers",
                "2",
                *CONF_ARGS,
                str(logs),
            ]
        )
        == 0
    )
    assert comparable(records(out.read_text())) == comparable(expected)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("how", ["--episodes", "--emit"])
def test_filter_fed_the_files_one_after_the_other(
    lab: tuple[Path, list[dict[str, Any]]], tmp_path: Path, seed: int, how: str
) -> None:
    logs, expected = lab
    order = list(FILES)
    random.Random(seed).shuffle(order)
    cat = tmp_path / "cat.log"
    cat.write_bytes(b"".join((logs / name).read_bytes() for name in order))
    out = tmp_path / "episodes.jsonl"
    extra = ["--episodes", str(out)] if how == "--episodes" else ["--emit", "episodes"]
    with open(cat, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "processor.cli", "filter", *CONF_ARGS, "--timezone", "UTC", *extra],
            stdin=stdin,
            capture_output=True,
            cwd=REPO,
            timeout=120,
            check=True,
        )
    got = records(out.read_text() if how == "--episodes" else done.stdout.decode())
    assert all(r["event"]["dataset"] == "badgateway.episode" for r in got)
    assert comparable(got, evidence=False) == comparable(expected, evidence=False)


@pytest.mark.parametrize("seed", [1, 2])
def test_follow_as_the_logs_grow(lab: tuple[Path, list[dict[str, Any]]], tmp_path: Path, seed: int) -> None:
    logs, expected = lab
    rnd = random.Random(seed)
    lines = {name: (logs / name).read_bytes().splitlines(keepends=True) for name in FILES}
    order = sorted(_timed_lines(logs), key=lambda t: (t[0], t[1]))
    next_line = {name: 0 for name in FILES}
    live = tmp_path / "live"
    live.mkdir()
    now = [1_900_000_000.0]
    args = argparse.Namespace(
        nginx_conf=str(LAB / "conf" / "nginx.conf"),
        fpm_conf=[str(LAB / "conf" / c) for c in ("php-fpm.conf", "php-fpm-legacy.conf", "php-fpm-reports.conf")],
        log_format=None,
        escape=None,
        timezone=ZoneInfo("UTC"),
        host=None,
        allowed_lateness=5.0,
        idle_timeout=30.0,
        episodes="-",
        episode_gap=60.0,
        episode_wait=10.0,
        episode_interval=300.0,
        episodes_fleet=False,
    )
    pipeline, know = build_pipeline(args, emit_events=False)
    f = Follower(
        pipeline,
        [str(live)],
        host=None,
        forced_type=None,
        format_by_base={base_name(p): fm for p, fm in know.format_by_path.items()},
        forced_format=know.forced_format,
        state_file=None,
        clock=lambda: now[0],
    )
    got: list[dict[str, Any]] = []

    def poll() -> None:
        now[0] += 0.25
        got.extend(json.loads(serialise(o)) for o in pipeline.episode_outputs(f.poll()) if o.kind == "episode")

    i = 0
    while i < len(order):
        batch = order[i : i + rnd.randint(1, 40)]
        i += len(batch)
        for _, _, name, _ in batch:
            with open(live / name, "ab") as fh:
                fh.write(lines[name][next_line[name]])
            next_line[name] += 1
        poll()
    for _ in range(400):  # quiet 100 s: the wall clock moves the watermark past gap, episodes resolve
        poll()
    resolved_live = sum(r["episode"]["state"] == "resolved" for r in got)
    got += [
        json.loads(serialise(o)) for o in pipeline.episode_outputs(pipeline.flush(), final=True) if o.kind == "episode"
    ]
    assert comparable(got) == comparable(expected)
    assert resolved_live > 0  # resolved by the watermark, not only at the stop
