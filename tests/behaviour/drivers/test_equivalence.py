"""One answer from every driver (#18), on the lab recording (real nginx + php-fpm), in UTC and in New York.

``replay`` (time zone learned from the access log) is the reference. ``replay --workers 2``, ``filter`` fed the
files one after the other in a seeded order (not merged in time), and ``follow`` reading the logs as they grow
(seeded write batches, a wall clock the test controls) and then a quiet tail, must give the same set of
(``event.id``, cause, pool), never two incidents for one request, and the same incident JSON apart from the
fields the README names as run-dependent. ``run`` on the real broker: tests/behaviour/drivers/test_equivalence_kafka.py.
"""

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
from processor.runners.follow import learned_zones
from processor.runners.replay import base_name
from processor.runners.settings import build_pipeline
from processor.runners.tail import Follower
from tests.behaviour.drivers.lab_logs import CONF_ARGS, FILES, LAB, comparable, key, lab_copy

REPO = Path(__file__).resolve().parents[3]
ZONES = ["UTC", "America/New_York"]
SEEDS = [1, 2, 3]


def incidents(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replayed(logs: Path, out: Path, *extra: str) -> list[dict[str, Any]]:
    assert main(["replay", "-q", "--no-progress", "-o", str(out), *CONF_ARGS, *extra, str(logs)]) == 0
    return incidents(out.read_text())


def same_answer(
    got: list[dict[str, Any]], expected: list[dict[str, Any]], *, late: bool = True, fpm_evidence: bool = True
) -> None:
    assert len({i["event"]["id"] for i in got}) == len(got), "two incidents with one event.id"
    # one request, one incident: no access line (nor error entry) anchors two incidents
    anchors = [(i["evidence"]["access"] or i["evidence"]["nginx_error"])["fields"].get("time") for i in got]
    assert len(anchors) == len(got)
    assert sorted(map(key, got)) == sorted(map(key, expected))
    want = {i["event"]["id"]: comparable(i, late=late, fpm_evidence=fpm_evidence) for i in expected}
    for i in got:
        assert comparable(i, late=late, fpm_evidence=fpm_evidence) == want[i["event"]["id"]], i["event"]["id"]


@pytest.fixture(params=ZONES)
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, list[dict[str, Any]]]:
    zone = str(request.param)
    logs = lab_copy(tmp_path / "logs", zone)
    expected = replayed(logs, tmp_path / "replay.jsonl")
    assert len(expected) == 41
    return logs, zone, expected


def test_replay_in_two_workers(lab: tuple[Path, str, list[dict[str, Any]]], tmp_path: Path) -> None:
    logs, _, expected = lab
    same_answer(replayed(logs, tmp_path / "w2.jsonl", "--workers", "2"), expected)


def test_replay_told_the_zone(lab: tuple[Path, str, list[dict[str, Any]]], tmp_path: Path) -> None:
    logs, zone, expected = lab
    same_answer(replayed(logs, tmp_path / "tz.jsonl", "--timezone", zone), expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_filter_fed_the_files_one_after_the_other(
    lab: tuple[Path, str, list[dict[str, Any]]], tmp_path: Path, seed: int
) -> None:
    logs, zone, expected = lab
    order = list(FILES)
    random.Random(seed).shuffle(order)
    cat = tmp_path / "cat.log"
    cat.write_bytes(b"".join((logs / name).read_bytes() for name in order))
    with open(cat, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "processor.cli", "filter", *CONF_ARGS, "--timezone", zone],
            stdin=stdin,
            capture_output=True,
            cwd=REPO,
            timeout=120,
            check=True,
        )
    # raw lines say nothing of the file they came from: the three PHP-FPM masters' logs are one stream, so the
    # evidence may cite another master's line of the same moment (README: filter); cause and pool are the same
    same_answer(incidents(done.stdout.decode()), expected, fpm_evidence=False)
    assert b"warning" not in done.stderr


def _timed_lines(logs: Path) -> list[tuple[int, int, str, bytes]]:
    """Every line of every file with the (UTC) second it was written, for writing them back in time order."""
    from tests.behaviour.drivers.lab_logs import _ACCESS, _ERROR, _FPM  # noqa: PLC0415

    out: list[tuple[int, int, str, bytes]] = []
    for fi, name in enumerate(FILES):
        last = 0
        for line in (LAB / "logs" / name).read_bytes().splitlines(keepends=True):
            text = line.decode()
            m = _ACCESS.search(text) or _ERROR.match(text) or _FPM.match(text)
            if m:
                digits = "".join(c for c in m[1] if c.isdigit())
                last = int(digits[-6:])  # hhmmss of one day: enough to order the recording
            out.append((last, fi, name, line))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_follow_as_the_logs_grow_then_a_quiet_tail(
    lab: tuple[Path, str, list[dict[str, Any]]], tmp_path: Path, seed: int
) -> None:
    logs, zone, expected = lab
    rnd = random.Random(seed)
    shifted = {name: (logs / name).read_bytes().splitlines(keepends=True) for name in FILES}
    # the recording's write order (UTC seconds; a file's own order kept), then the shifted lines in that order
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
        timezone=ZoneInfo(zone),
        host=None,
        allowed_lateness=5.0,
        idle_timeout=30.0,
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
    i = 0
    while i < len(order):  # nginx and php-fpm write; follow polls every 0.25 s
        batch = order[i : i + rnd.randint(1, 40)]
        i += len(batch)
        for _, _, name, _ in batch:
            with open(live / name, "ab") as fh:
                fh.write(shifted[name][next_line[name]])
            next_line[name] += 1
        now[0] += 0.25
        got += [json.loads(serialise(o)) for o in f.poll() if o.kind == "incident"]
    for _ in range(int((30 + 0.25) / 0.25) + 1):  # the quiet tail: idle_timeout + a poll
        now[0] += 0.25
        got += [json.loads(serialise(o)) for o in f.poll() if o.kind == "incident"]
    assert [o for o in pipeline.flush() if o.kind == "incident"] == []  # nothing waited for the stop
    same_answer(got, expected, late=False)


def test_follow_learns_the_zone_as_replay_does(lab: tuple[Path, str, list[dict[str, Any]]]) -> None:
    # --timezone auto (the default): the offset of the host's access log, learned from the files there at start
    logs, _, expected = lab
    args = argparse.Namespace(
        nginx_conf=str(LAB / "conf" / "nginx.conf"),
        fpm_conf=[str(LAB / "conf" / c) for c in ("php-fpm.conf", "php-fpm-legacy.conf", "php-fpm-reports.conf")],
        log_format=None,
        escape=None,
        timezone=None,
        host=None,
        type=None,
        allowed_lateness=5.0,
        idle_timeout=30.0,
    )
    pipeline, know = build_pipeline(args, emit_events=False)
    zones = learned_zones(pipeline, Follower.matching([str(logs)]), args, know)
    pipeline, _ = build_pipeline(args, emit_events=False, knowledge=know, host_timezones=zones)
    now = [1_900_000_000.0]
    f = Follower(
        pipeline,
        [str(logs)],
        host=None,
        forced_type=None,
        format_by_base={base_name(p): fm for p, fm in know.format_by_path.items()},
        forced_format=know.forced_format,
        state_file=None,
        clock=lambda: now[0],
    )
    got: list[dict[str, Any]] = []
    for _ in range(int(30 / 0.25) + 2):
        now[0] += 0.25
        got += [json.loads(serialise(o)) for o in f.poll() if o.kind == "incident"]
    same_answer(got, expected, late=False)
