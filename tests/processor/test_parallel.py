"""Parallel replay (one parse process per file) gives byte-identical output to the single-process replay."""

from __future__ import annotations

import sys
from pathlib import Path

from processor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_mixed import generate  # noqa: E402

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"
CONF = ["--nginx-conf", str(LAB / "conf" / "nginx.conf"),
        *[a for c in sorted((LAB / "conf").glob("php-fpm*.conf")) for a in ("--fpm-conf", str(c))]]


def run(args: list[str], out: Path, workers: int) -> bytes:
    assert main(["replay", "-q", "--no-progress", "-o", str(out), "--workers", str(workers), *args]) == 0
    return out.read_bytes()


def test_two_workers_give_identical_incidents_on_the_lab(tmp_path: Path) -> None:
    one = run([*CONF, str(LAB / "logs")], tmp_path / "one.jsonl", 1)
    two = run([*CONF, str(LAB / "logs")], tmp_path / "two.jsonl", 2)
    assert one == two and one.count(b"\n") == 41


def test_two_workers_give_identical_incidents_on_a_mixed_log(tmp_path: Path) -> None:
    generate(str(tmp_path / "mix"), 30_000)
    one = run([str(tmp_path / "mix")], tmp_path / "one.jsonl", 1)
    two = run([str(tmp_path / "mix")], tmp_path / "two.jsonl", 2)
    assert one == two and one.count(b"\n") > 250
