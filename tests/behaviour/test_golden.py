"""No refactor changes an answer: every output on the lab recording and the corpus equals the recorded digests.

Regenerate (only for a change of behaviour made on purpose): `python -m tests.behaviour.golden`.
"""

from __future__ import annotations

import json

import pytest

from tests.behaviour.golden import GOLDEN, RUNS, digest, produce

EXPECTED = json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name", sorted(RUNS))
def test_outputs_are_byte_identical_to_the_recorded_ones(name: str) -> None:
    outputs = produce(name)
    expected = EXPECTED[name]
    # the incident records first, by line, so a failure names the incidents that changed
    assert outputs["incidents"].decode().splitlines() == expected["incidents"]
    assert digest(outputs) == expected["digests"]
