"""``follow`` on quiet logs, with a wall clock the test controls (#18).

Reading the lab recording from the start, with every file read to its end and the logs then quiet, ``follow``
gives ``replay``'s incidents within ``idle_timeout`` + one poll of the last line, one per request; a directory
is followed, and files that appear in it later are picked up.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from processor.cli import main
from processor.runners.replay import base_name
from processor.runners.settings import build_pipeline
from processor.runners.tail import Follower

LAB = Path(__file__).resolve().parents[3] / "examples" / "lab"
CONFS = sorted((LAB / "conf").glob("php-fpm*.conf"))
IDLE_S = 30
POLL_S = 1.0
NOW_S = 1_900_000_000.0  # the wall clock: after the recording (2026-11-24)


def key(incident: dict[str, Any]) -> tuple[str, str, str | None]:
    return incident["event"]["id"], incident["badgateway"]["cause"], incident["php_fpm"]["pool"]


def replayed(logs: Path, out: Path) -> list[dict[str, Any]]:
    args = ["--nginx-conf", str(LAB / "conf" / "nginx.conf"), *[a for c in CONFS for a in ("--fpm-conf", str(c))]]
    assert main(["replay", "-q", "--no-progress", "-o", str(out), *args, str(logs)]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


class Clock:
    def __init__(self) -> None:
        self.now_s = NOW_S

    def __call__(self) -> float:
        return self.now_s


def follower(path: Path, clock: Clock) -> Follower:
    args = argparse.Namespace(
        nginx_conf=str(LAB / "conf" / "nginx.conf"),
        fpm_conf=[str(c) for c in CONFS],
        log_format=None,
        escape=None,
        timezone=None,
        host=None,
        allowed_lateness=5.0,
        idle_timeout=float(IDLE_S),
    )
    pipeline, know = build_pipeline(args, emit_events=False)
    return Follower(
        pipeline,
        [str(path)],
        host=None,
        forced_type=None,
        format_by_base={base_name(p): f for p, f in know.format_by_path.items()},
        forced_format=know.forced_format,
        state_file=None,
        clock=clock,
    )


def copy_lab(to: Path) -> None:
    to.mkdir(exist_ok=True)
    for f in sorted((LAB / "logs").iterdir()):
        if f.is_file():
            shutil.copy(f, to / f.name)


def polls(f: Follower, clock: Clock, seconds: float) -> list[dict[str, Any]]:
    """Poll every ``POLL_S`` for ``seconds`` of the test's clock; the incidents."""
    got: list[dict[str, Any]] = []
    end = clock.now_s + seconds
    while clock.now_s < end:
        clock.now_s += POLL_S
        got += [o.value for o in f.poll() if o.kind == "incident"]
    return got


def test_follow_from_the_start_gives_replays_answer_once_the_logs_are_quiet(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    copy_lab(logs)
    expected = replayed(logs, tmp_path / "replay.jsonl")
    clock = Clock()
    f = follower(logs, clock)  # a directory
    got = [o.value for o in f.poll() if o.kind == "incident"]  # everything read, at once
    got += polls(f, clock, IDLE_S + POLL_S)  # the last line's window closes within idle_timeout + a poll
    assert [o for o in f.pipeline.flush() if o.kind == "incident"] == []
    assert len(expected) == 41
    assert sorted(map(key, got)) == sorted(map(key, expected))
    assert not any(i["event"]["late"] for i in got)


def test_follow_dir_picks_up_files_that_appear_later(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    clock = Clock()
    f = follower(logs, clock)
    assert polls(f, clock, 5) == []
    copy_lab(logs)  # the logs appear (a web server started)
    (logs / "error.log.1").write_text("")  # a rotated copy is not followed
    got = polls(f, clock, IDLE_S + 2 * POLL_S)
    assert sorted(f.files) == sorted(str(p) for p in logs.iterdir() if p.name != "error.log.1")
    expected = replayed(LAB / "logs", tmp_path / "replay.jsonl")
    assert len(got) == len(expected) == 41
    assert {i["badgateway"]["cause"] for i in got} == {i["badgateway"]["cause"] for i in expected}
