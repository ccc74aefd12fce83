"""Inputs are read once and whole: FIFOs and process substitution, truncated archives, thousands of files
(issue #20)."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard

REPO = Path(__file__).resolve().parents[3]
PY = shlex.quote(sys.executable)


def access_lines(n: int, every_502: int = 50) -> str:
    out = []
    for i in range(n):
        status = 502 if i % every_502 == 0 else 200
        out.append(
            f"1.2.3.{i % 250} - - [24/Nov/2026:05:{i // 60 % 60:02d}:{i % 60:02d} +0100] "
            f'"GET /p{i} HTTP/1.1" {status} 12 "-" "x"\n'
        )
    return "".join(out)


def run_bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.parametrize("n", [17, 20_000])
def test_process_substitution_loses_no_line(tmp_path: Path, n: int) -> None:
    # replay <(cat access.log) lost 17 of 17 and 645 of 20,000 lines: the pipe was opened again after detection
    log = tmp_path / "access.log"
    log.write_text(access_lines(n))
    out = tmp_path / "inc.jsonl"
    proc = run_bash(f"{PY} -m processor.cli replay -o {out} <(cat {log})")
    assert proc.returncode == 0, proc.stderr
    assert f"lines read {n:,}" in proc.stderr or f"lines read {n}" in proc.stderr, proc.stderr
    expected = len(range(0, n, 50))
    assert out.read_text().count("\n") == expected


def test_process_substitution_of_a_gzip_stream(tmp_path: Path) -> None:
    log = tmp_path / "access.log.gz"
    log.write_bytes(gzip.compress(access_lines(5000).encode()))
    out = tmp_path / "inc.jsonl"
    proc = run_bash(f"{PY} -m processor.cli replay -o {out} <(cat {log})")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("\n") == 100


def test_a_named_fifo_is_read_once_and_does_not_hang(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(access_lines(3000))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(log.read_bytes())

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-o", str(tmp_path / "i.jsonl"), str(fifo)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    writer.join(5)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "i.jsonl").read_text().count("\n") == 60


def test_a_fifo_teaches_the_time_zone_and_is_still_read_whole(tmp_path: Path) -> None:
    # the head is read twice before the full read (type detection, then --timezone auto): both from the buffer
    from processor.cli.main import build_parser
    from processor.io.files import open_lines
    from processor.runners.replay import learn_host_timezones, plan_inputs
    from processor.runners.settings import build_pipeline

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = access_lines(200)
    writer = threading.Thread(target=lambda: fifo.write_text(text), daemon=True)
    writer.start()
    args = build_parser().parse_args(["replay", str(fifo)])
    pipeline, _ = build_pipeline(args, emit_events=False)
    plans = plan_inputs(pipeline, [str(fifo)])
    zones = learn_host_timezones(pipeline, plans)
    assert str(next(iter(zones.values()))) == "UTC+01:00"
    lines = [line for _, line in open_lines(plans[0].file)]
    writer.join(5)
    assert b"\n".join(lines) + b"\n" == text.encode()


def _zst_cut(tmp_path: Path, n: int) -> Path:
    data = zstandard.ZstdCompressor(level=3).compress(access_lines(n).encode())
    path = tmp_path / "access.log.zst"
    path.write_bytes(data[: len(data) * 3 // 4])
    return path


def test_a_truncated_zst_reports_the_line_reached_like_gzip(tmp_path: Path) -> None:
    # a truncated .zst dropped up to 1 MiB of decoded data silently and named an early line
    from processor.core.errors import InputError
    from processor.io.discovery import discover
    from processor.io.files import open_lines

    n = 40_000
    path = _zst_cut(tmp_path, n)
    text = access_lines(n).encode()
    lines: list[bytes] = []
    with pytest.raises(InputError) as err:
        for _, line in open_lines(discover([str(path)])[0]):
            lines.append(line)
    # every whole line zstd could decode was handed over before the error (the cut one is the line named)
    decoded = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    assert len(lines) == decoded.count(b"\n") > n // 2
    assert text.startswith(b"\n".join(lines))
    assert err.value.line == len(lines) + 1 and "ends early" in str(err.value)


def test_a_truncated_zst_replay_says_where(tmp_path: Path) -> None:
    path = _zst_cut(tmp_path, 40_000)
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-q", "-o", str(tmp_path / "i.jsonl"), str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}:" in proc.stderr and "compressed data ends early" in proc.stderr


def test_many_files_do_not_hold_a_descriptor_each(tmp_path: Path) -> None:
    # at ulimit -n 1024 a replay of 1,100 files failed at file 1,017 with "Too many open files"
    logs = tmp_path / "logs"
    logs.mkdir()
    healthy = '1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /ok HTTP/1.1" 200 1 "-" "x"\n' * 400
    for i in range(1100):  # each longer than a merge block: every file is still open when the merge starts
        (logs / f"web{i}.access.log").write_text(
            f'1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /f{i} HTTP/1.1" 502 1 "-" "x"\n' + healthy
        )
    out = tmp_path / "i.jsonl"
    proc = run_bash(f"ulimit -n 1024 && {PY} -m processor.cli replay --type nginx_access -q -o {out} {logs}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    incidents = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(incidents) == 1100


def test_an_unreadable_file_is_one_line_before_any_output(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    log = tmp_path / "access.log"
    log.write_text(access_lines(10))
    log.chmod(0)
    out = tmp_path / "i.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "replay", "-o", str(out), str(log)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"badgateway: error: {log}: permission denied"
    assert not out.exists()


def test_a_directory_s_fifo_and_socket_are_not_inputs(tmp_path: Path) -> None:
    # a FIFO inside a followed directory would block the replay forever: only named FIFOs are read
    from processor.io.discovery import discover

    (tmp_path / "access.log").write_text(access_lines(3))
    os.mkfifo(tmp_path / "pipe")
    assert [f.display for f in discover([str(tmp_path)])] == [str(tmp_path / "access.log")]
