"""Parallel replay (one parse process per file) gives byte-identical output to the single-process replay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from processor.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gen_mixed import generate  # noqa: E402

LAB = Path(__file__).resolve().parents[2] / "examples" / "lab"
CONF = [
    "--nginx-conf",
    str(LAB / "conf" / "nginx.conf"),
    *[a for c in sorted((LAB / "conf").glob("php-fpm*.conf")) for a in ("--fpm-conf", str(c))],
]


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


def test_many_files_do_not_start_a_process_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one parse process per file: a directory of thousands of rotated logs started thousands at once. Past
    # max_units the files are parsed in this process, with the same answer
    import processor.runners.parallel as parallel

    started: list[object] = []
    real = parallel.mp.get_context

    def counting(method: str) -> object:
        ctx = real(method)

        class Ctx:
            Pipe = ctx.Pipe

            @staticmethod
            def Process(*a: object, **k: object) -> object:  # noqa: N802 - multiprocessing's name
                started.append(a)
                return ctx.Process(*a, **k)  # type: ignore[arg-type]

        return Ctx

    monkeypatch.setattr(parallel.mp, "get_context", counting)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [
        f'10.0.0.{i % 200} - - [24/Nov/2026:05:00:{i % 60:02d} +0000] "GET /?id={i} HTTP/1.1" '
        f'{502 if i % 7 == 0 else 200} 1 "-" "x"\n'
        for i in range(60)
    ]
    assert parallel.max_units(2) < 200  # (the files below are written one per unit past it)
    count = parallel.max_units(2) + 6
    for k in range(count):
        (logs / f"access-{k:04d}.log").write_text("".join(lines[k % 60 :] + lines[: k % 60]))
    one = run([str(logs), "--type", "nginx_access"], tmp_path / "one.jsonl", 1)
    two = run([str(logs), "--type", "nginx_access"], tmp_path / "two.jsonl", 2)
    assert one == two and one.count(b"\n") > 0
    assert started == []  # more files than max_units: no process at all
    few = tmp_path / "few"
    few.mkdir()
    for k in range(3):
        (few / f"access-{k}.log").write_text("".join(lines))
    run([str(few), "--type", "nginx_access"], tmp_path / "few.jsonl", 2)
    assert len(started) == 3  # a few files: a process each, as before
