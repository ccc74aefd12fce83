"""``replay --workers N`` on a file cut in byte ranges gives the one-process answer (#18).

The file's stream was declared at its last range's first entry, so every failure of the earlier ranges was
behind the watermark: on an in-order access log half the incidents came out ``late``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from processor.cli import main
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners import units
from processor.runners.replay import Plan, plan_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from gen_outage import generate  # noqa: E402


def run(path: Path, out: Path, workers: int) -> bytes:
    assert main(["replay", "-q", "--no-progress", "-o", str(out), "--workers", str(workers), str(path)]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("workers", [2, 3])
def test_an_access_log_cut_in_ranges_gives_no_late_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    outage = generate(str(tmp_path / "logs"), 40_000, share=0.05)
    access = Path(outage.paths["access"])
    monkeypatch.setattr(units, "_SPLIT_BYTES", 1 << 20)  # (the real limit is 8 MiB) cut this small log
    assert len(units.units_for(_plans(access), workers)) == workers
    one = run(access, tmp_path / "one.jsonl", 1)
    many = run(access, tmp_path / "many.jsonl", workers)
    assert one.count(b"\n") == 2000 and b'"late":true' not in one
    assert many == one


def _plans(access: Path) -> list[Plan]:
    return plan_inputs(Pipeline(PipelineSettings()), [str(access)])
