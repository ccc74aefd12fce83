"""Outage episodes (#21): the lab's scripted scenarios, a synthetic day, the emission rules, and the cost.

Real data only: the lab recording (real nginx + php-fpm) and logs generated in the test in the lab's line shapes,
run through ``badgateway replay --episodes``; the core (``EpisodeTracker``) is then fed those incidents.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from processor.cli import main
from processor.diagnosis.episodes import EpisodeSettings, EpisodeTracker
from processor.io.sinks import MemorySink
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners.replay import plan_inputs
from processor.runners.replay import replay as replay_files
from tests.behaviour.drivers.lab_logs import CONF_ARGS, LAB
from tests.diagnosis.outage_logs import outage

SOCKET = "unix:/run/php/php8.2-fpm.sock"
DAY = datetime(2026, 11, 24, tzinfo=UTC)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replay(logs: Path, tmp: Path, *extra: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    inc, eps = tmp / "incidents.jsonl", tmp / "episodes.jsonl"
    assert main(["replay", "-q", "--no-progress", "-o", str(inc), "--episodes", str(eps), *extra, str(logs)]) == 0
    return jsonl(inc), jsonl(eps)


def finals(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """episode.id → its last record; and each episode's records are numbered 1, 2, … and end resolved."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_id.setdefault(r["episode"]["id"], []).append(r)
    for recs in by_id.values():
        assert [r["episode"]["sequence"] for r in recs] == list(range(1, len(recs) + 1))
        assert recs[0]["episode"]["state"] == "opened" and recs[-1]["episode"]["state"] == "resolved"
        assert all(r["episode"]["state"] == "updated" for r in recs[1:-1])
        counts = [r["episode"]["count"] for r in recs]
        assert counts == sorted(counts)  # never contradicted: an update only adds
    return {i: recs[-1] for i, recs in by_id.items()}


# -- the lab: one episode per scripted cause and pool, exact counts ----------------------------------------------


def test_each_lab_scenario_is_one_episode_with_exact_counts(tmp_path: Path) -> None:
    incidents, records = replay(LAB / "logs", tmp_path, *CONF_ARGS)
    truth = [json.loads(line) for line in (LAB / "ground_truth.jsonl").read_text().splitlines()]
    failed = [t for t in truth if t["cause"]]
    # the ground truth names an upstream group by its name; the incident the member address that refused
    upstream_of = {
        re.search(r"id=(lab-\d+)", i["url"]["original"])[1]: i["nginx"]["upstream"]["address"]  # type: ignore[index]
        for i in incidents
    }
    expected = Counter((t["cause"], t["pool"], upstream_of[t["id"]]) for t in failed)
    by_status = Counter((t["cause"], t["pool"], upstream_of[t["id"]], t["observed_status"]) for t in failed)
    got = finals(records)
    assert len(got) == len(expected) == 15
    keys = Counter(
        (r["badgateway"]["cause"], r["php_fpm"]["pool"], r["nginx"]["upstream"]["address"]) for r in got.values()
    )
    assert keys == Counter(dict.fromkeys(expected, 1))  # one episode each
    ids = {i["event"]["id"] for i in incidents}
    for r in got.values():
        e = r["episode"]
        key = (r["badgateway"]["cause"], r["php_fpm"]["pool"], r["nginx"]["upstream"]["address"])
        assert e["count"] == expected[key]
        assert e["status"] == {str(s): by_status[(*key, s)] for s in (502, 504) if by_status[(*key, s)]}
        assert set(e["samples"]) <= ids and len(e["samples"]) == min(5, e["count"])
        assert sum(u["count"] for u in e["top_uris"]) == e["count"]
    crash = next(r for r in got.values() if r["badgateway"]["cause"] == "child_crash")["episode"]
    assert crash["evidence"][:2] == ["nginx recv failed 4 times", "2 children exited on SIGSEGV"]
    saturated = next(r for r in got.values() if r["php_fpm"]["pool"] == "queue")["episode"]
    assert "pm.max_children reached once" in saturated["evidence"]  # one warning line shared by three incidents


# -- a synthetic day: three separate outages and a noisy period that must not split ------------------------------


def _day(tmp: Path) -> tuple[Path, dict[str, tuple[str, int, datetime, datetime]]]:
    rnd = random.Random(21)
    access: list[tuple[datetime, str]] = []
    error: list[tuple[datetime, str]] = []
    fpm: list[tuple[datetime, str]] = [
        (DAY, f"[{DAY:%d-%b-%Y %H:%M:%S}] NOTICE: fpm is running, pid 1"),
        (DAY, f"[{DAY:%d-%b-%Y %H:%M:%S}] NOTICE: ready to handle connections"),
    ]
    n = [0]

    def request(t: datetime, kind: str | None) -> None:
        n[0] += 1
        uri = f"/{kind or 'ok'}/index.php?id={n[0]}"
        tail = (
            f'client: 10.0.0.{n[0] % 250 + 1}, server: shop.test, request: "GET {uri} HTTP/1.1", '
            f'upstream: "fastcgi://{SOCKET}:", host: "shop.test"'
        )
        err_t, fpm_t = f"{t:%Y/%m/%d %H:%M:%S}", f"{t:%d-%b-%Y %H:%M:%S}"
        status = 200 if kind is None else 504 if kind == "nginx_504" else 502
        if kind == "segfault":
            fpm.append(
                (
                    t,
                    f"[{fpm_t}] WARNING: [pool www] child {20000 + n[0]} exited on signal 11 (SIGSEGV) after "
                    "0.370722 seconds from start",
                )
            )
            error.append(
                (
                    t,
                    f"{err_t} [error] 812#812: *{n[0]} upstream prematurely closed connection while reading "
                    f"response header from upstream, {tail}",
                )
            )
        elif kind == "socket":
            error.append(
                (
                    t,
                    f"{err_t} [crit] 812#812: *{n[0]} connect() to {SOCKET} failed (2: No such file or "
                    f"directory) while connecting to upstream, {tail}",
                )
            )
        elif kind == "nginx_504":
            error.append(
                (
                    t,
                    f"{err_t} [error] 812#812: *{n[0]} upstream timed out (110: Connection timed out) while "
                    f"reading response header from upstream, {tail}",
                )
            )
        access.append(
            (
                t,
                f'10.0.0.{n[0] % 250 + 1} - - [{t:%d/%b/%Y:%H:%M:%S +0000}] "GET {uri} HTTP/1.1" {status}'
                ' 150 "-" "curl/8.4.0"',
            )
        )

    # (kind, start, seconds between failures, how many)
    plan: list[tuple[str, datetime, list[float]]] = [
        ("segfault", DAY + timedelta(hours=2), [1.0] * 300),  # a 5-minute crash loop
        ("socket", DAY + timedelta(hours=9), [0.5] * 360),  # 3 minutes with the socket gone
        ("segfault", DAY + timedelta(hours=15), [1.0] * 120),  # the crash loop again, hours later: a new episode
        # noisy: an hour of stray 504s, 5 to 55 s apart — never a gap of 60 s, so never split
        ("nginx_504", DAY + timedelta(hours=20), [rnd.uniform(5, 55) for _ in range(140)]),
    ]
    expected: dict[str, tuple[str, int, datetime, datetime]] = {}
    failing: list[tuple[datetime, str]] = []
    for label, (kind, start, gaps) in zip(("A", "B", "C", "noisy"), plan):
        t, times = start, []
        for g in gaps:
            times.append(t)
            t += timedelta(seconds=g)
        times = [x.replace(microsecond=0) for x in times]
        failing += [(x, kind) for x in times]
        expected[label] = (kind, len(times), times[0], times[-1])
    for t, kind in sorted(failing):
        request(t, kind)
    for s in range(0, 86_400, 20):  # healthy traffic all day keeps event time moving
        request(DAY + timedelta(seconds=s), None)
    logs = tmp / "day"
    logs.mkdir()
    for name, lines in (("access.log", access), ("error.log", error), ("php-fpm.log", fpm)):
        (logs / name).write_text("".join(line + "\n" for _, line in sorted(lines, key=lambda x: x[0])))
    return logs, expected


def test_a_synthetic_day_gives_exactly_the_expected_episodes(tmp_path: Path) -> None:
    logs, expected = _day(tmp_path)
    incidents, records = replay(logs, tmp_path, "--host", "web-1")
    assert len(incidents) == sum(e[1] for e in expected.values())
    got = sorted(finals(records).values(), key=lambda r: r["episode"]["first"])
    cause = {"segfault": "child_crash", "socket": "socket_missing", "nginx_504": "nginx_timeout"}
    assert [
        (r["badgateway"]["cause"], r["episode"]["count"], r["episode"]["first"], r["episode"]["last"]) for r in got
    ] == [
        (cause[k], n, f"{a:%Y-%m-%dT%H:%M:%S}.000Z", f"{b:%Y-%m-%dT%H:%M:%S}.000Z") for k, n, a, b in expected.values()
    ]
    assert {r["host"]["name"] for r in got} == {"web-1"}
    a, b, c, noisy = got
    assert a["episode"]["peak_per_minute"] == 60 and b["episode"]["peak_per_minute"] == 120
    assert a["episode"]["evidence"][0] == "300 children exited on SIGSEGV"
    assert noisy["episode"]["status"] == {"504": 140}
    assert a["episode"]["id"] != c["episode"]["id"]  # one cause, two outages: two episodes
    states = Counter((r["episode"]["id"], r["episode"]["state"]) for r in records)
    # the noisy hour: opened, then an update every 5 minutes with something new, and at 10 and 100
    assert states[(noisy["episode"]["id"], "updated")] >= 11


# -- the emission rules, in event time --------------------------------------------------------------------------


def _incident(ts_s: float, n: int, host: str = "web-1", status: int = 502) -> dict[str, Any]:
    ms = int(ts_s * 1000)
    return {
        "@timestamp": datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z",
        "event": {"id": f"bgw-{n:06d}"},
        "host": {"name": host},
        "http": {"response": {"status_code": status}},
        "url": {"original": f"/p{n % 3}.php?id={n}"},
        "badgateway": {"cause": "fpm_down", "remediation": "start the master"},
        "php_fpm": {"pool": "www"},
        "nginx": {"upstream": {"address": SOCKET}},
        "evidence": {},
    }


def test_opened_after_group_wait_updates_and_resolved_after_gap() -> None:
    t0 = 1_800_000_000
    incidents = [_incident(t0 + i * 0.5, i) for i in range(1200)]  # 10 minutes at 2 per second
    tracker = EpisodeTracker(EpisodeSettings())
    out = []
    for inc in reversed(incidents):  # any arrival order
        out += tracker.add(inc)
    assert tracker.advance((t0 + 9) * 1000) == []  # not before group_wait
    out += tracker.advance((t0 + 11) * 1000)
    assert [(r["episode"]["state"], r["episode"]["count"], r["@timestamp"][11:19]) for r in out] == [
        ("opened", 21, "08:00:10")
    ]  # count at the cutoff: incidents up to t0 + 10 s
    out += tracker.advance((t0 + 600 + 59) * 1000)
    assert out[-1]["episode"]["state"] == "updated"  # not resolved before the gap passed
    out += tracker.advance((t0 + 600 + 60) * 1000)
    got = [(r["episode"]["state"], r["episode"]["count"]) for r in out]
    # opened at +10 s; 100 at +49.5 s; the 5-minute update at +310 s; 1000 at +499.5 s; the update at +610 s (the
    # episode lasts until +599.5 s, so it is still open); resolved at the last incident + 60 s
    assert got == [
        ("opened", 21),
        ("updated", 100),
        ("updated", 621),
        ("updated", 1000),
        ("updated", 1200),
        ("resolved", 1200),
    ]
    assert out[-1]["@timestamp"][11:23] == "08:10:59.500"
    assert out[-1]["episode"]["peak_per_minute"] == 120 and out[-1]["episode"]["status"] == {"502": 1200}
    assert tracker.open_episodes == 0 and tracker.finish() == []


def test_fleet_wide_lists_the_hosts() -> None:
    tracker = EpisodeTracker(EpisodeSettings(fleet=True))
    for i in range(30):
        tracker.add(_incident(1_800_000_000 + i, i, host=f"web-{i % 3}"))
    (opened, resolved) = tracker.finish()
    assert resolved["episode"]["hosts"] == ["web-0", "web-1", "web-2"] and resolved["host"]["name"] is None
    assert resolved["episode"]["count"] == 30 and opened["episode"]["id"] == resolved["episode"]["id"]


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="group_wait"):
        EpisodeSettings(gap_ms=10_000, group_wait_ms=10_000)


# -- the cost: linear in incidents, at 100 % failures -----------------------------------------------------------


def _steps_per_incident(requests: int, tmp: Path) -> tuple[float, int]:
    logs = outage(requests, per_second=200)  # every request fails
    paths = logs.write(str(tmp / str(requests)))
    pipeline = Pipeline(PipelineSettings(episodes=EpisodeSettings()))
    sink = MemorySink()
    replay_files(pipeline, plan_inputs(pipeline, list(paths.values()), host="web-1"), sink)
    records = len(sink.episodes)
    tracker = pipeline.episodes
    assert tracker is not None and tracker.applied == logs.failures
    return tracker.steps / tracker.applied, records


def test_grouping_is_linear_at_full_failure(tmp_path: Path) -> None:
    # operation counts, not timings: ten times the incidents cost the same per incident, and records grow with the
    # powers of ten (a log), not with the incidents
    small, small_records = _steps_per_incident(2_000, tmp_path)
    big, big_records = _steps_per_incident(20_000, tmp_path)
    assert big <= small * 1.1 + 0.5, (small, big)
    assert big < 3, big  # measured: 2.0 (one heap push and pop per incident)
    assert big_records <= small_records + 5 * 6  # one more power of ten per cause (five causes)


def test_the_terminal_summary_lists_the_episodes(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "replay",
            "--no-progress",
            "-o",
            os.devnull,
            *CONF_ARGS,
            str(LAB / "logs"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = done.stderr.split("episodes: 15 (", 1)[1].splitlines()
    assert lines[1].split() == ["first", "lasted", "host", "cause", "pool", "502", "504", "total", "peak/min"]
    assert lines[2].split()[4:] == ["child_crash", "crash", "4", "0", "4", "4"]  # the largest first
    assert len(lines) == 2 + 15


def test_held_offsets_keep_an_open_episode_replayable_whole() -> None:
    # a restart must replay every incident of an open episode (and of one resolved too recently to be safe)
    settings = EpisodeSettings(retain_ms=72_000)
    tracker = EpisodeTracker(settings)
    t0 = 1_800_000_000
    for i in range(20):
        inc = _incident(t0 + i, i)
        inc["evidence"] = {
            "access": {"source": f"access.log:{100 + i}", "log_type": "nginx_access", "fields": {}},
            "nginx_error": {
                "source": f"error.log:{50 + i}",
                "log_type": "nginx_error",
                "fields": {"kind": "connect_failed"},
            },
        }
        tracker.add(inc)
    assert tracker.held_offsets() == {"access.log": 100, "error.log": 50}  # waiting, not yet applied
    tracker.advance((t0 + 30) * 1000)
    assert tracker.held_offsets() == {"access.log": 100, "error.log": 50}  # open
    records = tracker.advance((t0 + 19 + 60) * 1000)
    assert records[-1]["episode"]["state"] == "resolved"
    assert records[-1]["episode"]["evidence"] == ["nginx connect failed 20 times"]
    assert tracker.held_offsets() == {"access.log": 100, "error.log": 50}  # resolved, still held a while
    tracker.advance((t0 + 19 + 60 + 72 + 1) * 1000)
    assert tracker.held_offsets() == {}
