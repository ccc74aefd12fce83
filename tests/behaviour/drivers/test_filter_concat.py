"""``filter`` fed the logs one after the other (``cat access.log error.log php-fpm.log | badgateway filter``),
not merged in time (#18): the windows wait for every declared log type, so the answer is ``replay``'s; past
``max_state`` the oldest windows close early and stderr says how many.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from processor.cli import main

REPO = Path(__file__).resolve().parents[3]
LAB = REPO / "examples" / "lab"
CONF = [
    "--nginx-conf",
    str(LAB / "conf" / "nginx.conf"),
    *[a for c in sorted((LAB / "conf").glob("php-fpm*.conf")) for a in ("--fpm-conf", str(c))],
]
# one log after the other, the order `cat` is given them in
ORDER = [
    "access.log",
    "access_combined.log",
    "error.log",
    "php-fpm.log",
    "php-fpm-legacy.log",
    "php-fpm-reports.log",
    "slow.log",
]


def key(incident: dict[str, Any]) -> tuple[str, str, str | None]:
    return incident["event"]["id"], incident["badgateway"]["cause"], incident["php_fpm"]["pool"]


def concatenated(tmp_path: Path, order: list[str]) -> Path:
    cat = tmp_path / "cat.log"
    cat.write_bytes(b"".join((LAB / "logs" / name).read_bytes() for name in order))
    return cat


def replayed(tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "replay.jsonl"
    assert main(["replay", "-q", "--no-progress", "-o", str(out), *CONF, str(LAB / "logs")]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize("order", [ORDER, ORDER[::-1], ORDER[2:] + ORDER[:2]], ids=["types", "reversed", "errors"])
def test_concatenated_logs_give_replays_answer(tmp_path: Path, order: list[str]) -> None:
    with open(concatenated(tmp_path, order), "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "processor.cli", "filter", *CONF],
            stdin=stdin,
            capture_output=True,
            cwd=REPO,
            timeout=120,
            check=True,
        )
    got = [json.loads(line) for line in done.stdout.splitlines()]
    expected = replayed(tmp_path)
    assert len(expected) == 41
    assert sorted(map(key, got)) == sorted(map(key, expected))
    assert len({i["event"]["id"] for i in got}) == len(got)
    assert b"warning" not in done.stderr


def test_past_max_state_a_warning_says_how_many_windows_closed_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    with open(concatenated(tmp_path, ORDER), "rb") as stdin:
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": stdin})())
        assert main(["filter", *CONF, "--max-state", "4"]) == 0
    err = capfdbinary.readouterr().err.decode()
    assert "windows closed early" in err
    evicted = int(err.split("warning: ")[1].split(" windows")[0])
    assert evicted > 0
