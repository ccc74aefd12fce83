"""An empty or unrecognised file in a multi-file replay (issue #19): one warning naming it, its lines typed one
by one (those no grammar takes dead-lettered, counted), and the replay of the rest goes on; `--strict` stops at
it with one line and exit 2, as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab" / "logs"


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "access.log").write_bytes((LAB / "access.log").read_bytes())
    (d / "error.log").write_bytes((LAB / "error.log").read_bytes())
    (d / "access.log.1").write_bytes(b"")  # an empty rotated log: common
    (d / "notes.txt").write_text("deployed v2 at 05:40\nrolled back\n")
    return d


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unknown_and_empty_files_are_named_and_the_rest_replayed(logs: Path, tmp_path: Path, workers: str) -> None:
    dead = tmp_path / "dead.jsonl"
    proc = badgateway(
        "replay", "--workers", workers, "-o", str(tmp_path / "i.jsonl"), "--dead-letter", str(dead), str(logs)
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("badgateway: warning: ")]
    assert len(warnings) == 2 and "access.log.1" in warnings[0] and "notes.txt" in warnings[1], proc.stderr
    letters = [orjson.loads(ln) for ln in dead.read_bytes().splitlines()]
    assert [d["source"].rsplit("/", 1)[1] for d in letters] == ["notes.txt:1", "notes.txt:2"]
    read = sum(1 for _ in (LAB / "access.log").open()) + sum(1 for _ in (LAB / "error.log").open()) + 2
    assert f"lines read {read:,} = parsed {read - 2:,} + dead-lettered 2" in proc.stderr
    assert (tmp_path / "i.jsonl").read_bytes().count(b"\n") > 0


def test_strict_stops_at_the_first_file_it_cannot_type(logs: Path, tmp_path: Path) -> None:
    proc = badgateway("replay", "--strict", "-o", str(tmp_path / "i.jsonl"), str(logs))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "access.log.1: cannot tell which log this is" in lines[0], proc.stderr
