"""The terminal after a replay: what GoAccess's first screen gives (counts, causes by pool, top URIs, time range),
what the run could not know and what it cost, colour on a tty unless NO_COLOR, a progress bar that counts lines."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from processor.cli.progress import Progress
from processor.cli.terminal import colour_enabled, paint_findings, paint_summary

REPO = Path(__file__).resolve().parents[2]
LOGS = "examples/lab/logs"


def replay_stderr(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-o", "/dev/null", *args, LOGS],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_without_configs_the_summary_says_what_they_would_have_told() -> None:
    err = replay_stderr()
    assert "what this run could not know:" in err
    assert "6 socket_missing could be fpm_down or socket_mismatch: pass --fpm-conf" in err
    assert "incidents have no pool: --fpm-conf" in err


def test_with_configs_nothing_is_missing() -> None:
    err = replay_stderr("--nginx-conf", "examples/lab/conf/nginx.conf", "--fpm-conf", "examples/lab/conf")
    assert "could not know" not in err and "socket_missing" not in err


def test_a_missing_error_log_is_named(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-o", "/dev/null", f"{LOGS}/access.log"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert "no NGINX error log was read" in proc.stderr


def test_the_first_screen_has_counts_causes_by_pool_top_uris_and_time_range() -> None:
    err = replay_stderr("--nginx-conf", "examples/lab/conf/nginx.conf", "--fpm-conf", "examples/lab/conf")
    assert "lines read 364 = parsed 364 + dead-lettered 0" in err
    assert "requests: 105 access lines, 41 failed with 502/504 (39.0 %)" in err
    assert "time range: 2026-11-24 07:41:41Z – 2026-11-24 07:41:55Z" in err
    assert "  cause              pool" in err and "top failing URIs" in err


def run_in_pty(argv: list[str], env: dict[str, str]) -> str:
    """stderr of the command when it is a terminal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=follower, cwd=REPO, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("no_color", [None, "1"])
def test_a_tty_gets_colour_unless_no_color(no_color: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    if no_color:
        env["NO_COLOR"] = no_color
    err = run_in_pty([sys.executable, "-m", "processor.cli", "replay", "--no-progress", "-o", "/dev/null", LOGS], env)
    assert "incidents: 41" in err.replace("\x1b[1m", "").replace("\x1b[0m", "")
    assert ("\x1b[" in err) is (no_color is None), err[:300]


def test_colour_is_never_written_to_a_file_or_pipe() -> None:
    assert "\x1b[" not in replay_stderr(env={**os.environ, "TERM": "xterm"})
    assert not colour_enabled(io.StringIO(), {})


def test_painting_keeps_the_text() -> None:
    text = "incidents: 3 (502: 3)\n  cause  pool  total\n  x      -     3\n"
    assert paint_summary(text).replace("\x1b[1m", "").replace("\x1b[2m", "").replace("\x1b[0m", "") == text
    findings = "error: fastcgi_pass_unreached: a → b\n  fix: c\n"
    painted = paint_findings(findings)
    assert "\x1b[31merror\x1b[0m" in painted
    assert painted.replace("\x1b[31m", "").replace("\x1b[1m", "").replace("\x1b[0m", "") == findings


def test_the_progress_bar_counts_lines() -> None:
    # it showed "0 lines/s" for every replay: the reader told it bytes only
    from processor.cli.main import build_parser
    from processor.io.sinks import MemorySink
    from processor.runners.replay import plan_inputs, replay
    from processor.runners.settings import build_pipeline

    now = [0.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    args = build_parser().parse_args(["replay", LOGS])
    pipeline, _ = build_pipeline(args, emit_events=False)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        plans = plan_inputs(pipeline, [LOGS])
        screen = io.StringIO()
        progress = Progress(sum(p.file.size_bytes for p in plans), stream=screen, enabled=True, clock=clock)
        replay(pipeline, plans, MemorySink(), progress=progress)
    finally:
        os.chdir(cwd)
    assert progress.lines > 0
    shown = [
        part.split(" lines/s")[0].rsplit(" ", 1)[-1] for part in screen.getvalue().split("\r") if "lines/s" in part
    ]
    assert any(rate.replace(",", "") not in ("", "0") for rate in shown), shown
