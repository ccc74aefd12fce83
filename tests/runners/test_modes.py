"""The plug-in modes on real files and processes: ``filter`` through a real pipe, ``follow`` across a
rename rotation and a copytruncate while lines keep coming, the Python API, and a grammar plugin.

Each mode must give the same incidents (same ``event.id``, cause, pool) as ``replay`` on the same lab logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from processor.cli import main
from processor.configs.knowledge import load_knowledge
from processor.core.events import Record, SourceRef
from processor.core.parse import ParseSettings
from processor.diagnosis.join import JoinSettings
from processor.pipeline import Pipeline, PipelineSettings

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "examples" / "lab"
CONF = [str(LAB / "conf" / "nginx.conf")]
FPM_CONFS = sorted(str(p) for p in (LAB / "conf").glob("php-fpm*.conf"))
CONF_ARGS = ["--nginx-conf", CONF[0], *[a for c in FPM_CONFS for a in ("--fpm-conf", c)]]
LOGS = ["error.log", "access.log", "access_combined.log", "php-fpm.log", "php-fpm-legacy.log", "php-fpm-reports.log"]


def key(incidents: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return sorted((i["event"]["id"], i["badgateway"]["cause"], i["php_fpm"]["pool"]) for i in incidents)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replayed(tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "replay.jsonl"
    assert (
        main(
            ["replay", "-q", "--no-progress", "-o", str(out), *CONF_ARGS, *[str(LAB / "logs" / name) for name in LOGS]]
        )
        == 0
    )
    return read_jsonl(out)


def test_filter_through_a_real_pipe(tmp_path: Path) -> None:
    data = b"".join((LAB / "logs" / name).read_bytes() for name in LOGS)
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "filter", "--allowed-lateness", "60", *CONF_ARGS],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    incidents = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert key(incidents) == key(replayed(tmp_path)) and len(incidents) == 41
    lines = data.count(b"\n")
    assert f"lines in {lines} = parsed {lines} + dead-lettered 0".encode() in proc.stderr


def test_filter_unwraps_shipper_envelopes(tmp_path: Path) -> None:
    err = (LAB / "logs" / "error.log").read_text().splitlines()
    records = [
        json.dumps({"message": line, "host": {"name": "web-7"}, "log": {"file": {"path": "/var/log/e"}}})
        for line in err
        if "(13: Permission denied)" in line
    ]
    records.append("{not json but a raw line")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "filter",
            "--envelope",
            "auto",
            "--dead-letter",
            str(tmp_path / "dead.jsonl"),
        ],
        input="\n".join(records).encode(),
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    incidents = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [i["badgateway"]["cause"] for i in incidents] == ["socket_permission"] * 3
    assert {i["host"]["name"] for i in incidents} == {"web-7"}
    [dead] = read_jsonl(tmp_path / "dead.jsonl")
    assert dead["reason"].startswith("unrecognised log line")


def test_follow_across_rename_and_copytruncate(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    halves = {}
    for name in LOGS:
        lines = (LAB / "logs" / name).read_text().splitlines(keepends=True)
        cut = len(lines) // 2
        while (
            cut < len(lines)
            and lines[cut][:1] in (" ", "#", "\t")
            or (cut < len(lines) and not lines[cut][:1].isalnum() and lines[cut][:1] not in "[{")
        ):
            cut += 1  # never split a multi-line entry between the two halves
        halves[name] = ("".join(lines[:cut]), "".join(lines[cut:]))
    state = tmp_path / "follow.state"
    out, events = tmp_path / "incidents.jsonl", tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "follow",
            str(live / "*.log"),
            "-o",
            str(out),
            "--events",
            str(events),
            "--state-file",
            str(state),
            "--poll-interval",
            "0.05",
            "--allowed-lateness",
            "60",
            *CONF_ARGS,
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)
        for name in LOGS:
            (live / name).write_text(halves[name][0])  # files that appear after follow started
        time.sleep(1.5)
        # logrotate's default: rename, then the writer reopens a new file
        os.rename(live / "access.log", tmp_path / "access.log.1")
        (live / "access.log").write_text(halves["access.log"][1])
        # copytruncate: copy away, empty the file in place, the writer goes on writing
        with open(live / "error.log", "r+") as fh:
            fh.truncate(0)
        time.sleep(1.0)
        with open(live / "error.log", "a") as fh:
            fh.write(halves["error.log"][1])
        for name in LOGS:
            if name not in ("access.log", "error.log"):
                with open(live / name, "a") as fh:
                    fh.write(halves[name][1])
        time.sleep(2.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert key(read_jsonl(out)) == key(replayed(tmp_path))
    # no line lost or read twice: every line became exactly one event (multi-line entries once)
    expected_events = tmp_path / "replay-events.jsonl"
    assert (
        main(
            [
                "replay",
                "-q",
                "--no-progress",
                "-o",
                os.devnull,
                "--events",
                str(expected_events),
                *CONF_ARGS,
                *[str(LAB / "logs" / name) for name in LOGS],
            ]
        )
        == 0
    )
    assert len(read_jsonl(events)) == len(read_jsonl(expected_events))
    saved = json.loads(state.read_text())["files"]
    assert saved[str(live / "access.log")]["offset"] == len(halves["access.log"][1].encode())


def test_python_api_gives_what_replay_gives(tmp_path: Path) -> None:
    know = load_knowledge(CONF[0], FPM_CONFS)
    pipeline = Pipeline(
        PipelineSettings(ParseSettings(formats=know.formats), JoinSettings(allowed_lateness_ms=60_000)), know.topology
    )
    incidents: list[dict[str, Any]] = []
    for name in LOGS:
        fmt = know.format_by_path.get(f"/tmp/badgateway-lab/logs/{name}")
        for n, line in enumerate((LAB / "logs" / name).read_text().splitlines(), 1):
            outs = pipeline.feed(Record(line, SourceRef(name, n), None, None, fmt))
            incidents += [o.value for o in outs if o.kind == "incident"]
    incidents += [o.value for o in pipeline.flush() if o.kind == "incident"]
    assert key(incidents) == key(replayed(tmp_path))


PLUGIN = """
from datetime import datetime, timezone
from grammars.plugins import GrammarPlugin
from grammars.result import ParseError

def _parse(line):
    parts = line.split("|")
    if len(parts) != 3 or parts[0] != "TINY":
        return ParseError("not a TINY line", 1, line)
    return {"time": datetime.fromtimestamp(int(parts[1]), timezone.utc), "message": parts[2]}

PLUGIN = GrammarPlugin(name="tiny", parse=_parse, detect=lambda line: line.startswith("TINY|"),
                       description="a test grammar")
"""


def test_a_grammar_plugin_is_discovered_and_used(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "tiny_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "tiny_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "tiny_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n"
    )
    (site / "tiny_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[badgateway.grammars]\ntiny = tiny_plugin:PLUGIN\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    listed = subprocess.run(
        [sys.executable, "-m", "processor.cli", "grammars", "--format", "json"],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.decode().splitlines()]
    assert {"name": "tiny", "log_type": "tiny", "origin": "plugin", "description": "a test grammar"} in rows
    log = tmp_path / "tiny.log"
    log.write_text("TINY|1795500000|hello\nTINY|1795500001|world\n")
    events = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-q", str(log), "--events", str(events)],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    docs = read_jsonl(events)
    assert [d["badgateway"]["fields"]["message"] for d in docs] == ["hello", "world"]


def test_the_api_example_runs_and_explains_the_lab() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "api_example.py")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(1 for line in lines if line.startswith(("502 ", "504 "))) == 41
    assert lines[-1].endswith("dead-lettered 0")
