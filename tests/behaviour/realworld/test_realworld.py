"""Every case of the real-world suite (``cases.py``): its cause and pool, and no real line dead-lettered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.behaviour.realworld.cases import CASES, Case
from tests.behaviour.realworld.harness import replay

CORPUS = Path(__file__).parents[2] / "corpus"
KINDS = (("nginx-error", "error.log"), ("nginx-access", "access.log"), ("php-fpm", "php-fpm.log"))


def _logs(case: Case) -> dict[str, str]:
    logs = {}
    for folder, name in KINDS:
        path = CORPUS / folder / f"{case.name}.log"
        if path.exists():
            logs[name] = path.read_text(encoding="utf-8", errors="surrogateescape")
    assert logs, case.name
    return logs


def test_the_suite_is_large_and_from_threads() -> None:
    assert len(CASES) >= 30
    assert all(case.url.startswith("https://github.com/") for case in CASES)
    provenance = "".join((CORPUS / folder / "PROVENANCE.md").read_text() for folder, _ in KINDS)
    assert all(case.name in provenance for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name.removeprefix("issue-") for c in CASES])
def test_real_world_case(tmp_path: Path, case: Case) -> None:
    incidents, dead = replay(tmp_path, _logs(case))
    assert dead == [], f"{case.url}: real lines dead-lettered"
    got = sorted(
        ((i["badgateway"]["cause"], i["php_fpm"]["pool"], i["php_fpm"]["pool_source"]) for i in incidents), key=str
    )
    assert got == sorted(case.expected, key=str), case.thread
