"""``fit_dead_letter``: a dead letter the broker would refuse is cut to fit, never dropped nor retried forever."""

from __future__ import annotations

import orjson
import pytest

from processor.runners.service import fit_dead_letter


def _doc(raw: str, value: str) -> dict[str, object]:
    return {
        "source": "access[0]@7",
        "reason": "expected '[' at column 9",
        "column": 9,
        "context": raw[:80] + "\n        ^",
        "raw": raw,
        "value": value,
        "headers": {"shipper": "test"},
    }


def test_a_small_dead_letter_is_left_whole() -> None:
    doc = _doc("not a log line", "not a log line\n")
    assert orjson.loads(fit_dead_letter(doc, 4096)) == doc


@pytest.mark.parametrize("limit", [4096, 10_000, 900_000])
@pytest.mark.parametrize(
    "raw",
    ["x" * 2_000_000, "é" * 700_000, "\x00\x01" * 300_000, "a\udcff" * 400_000],
    ids=["ascii", "two-byte", "control (escaped x6)", "invalid utf-8"],
)
def test_a_large_one_is_cut_to_the_limit_with_its_sizes(limit: int, raw: str) -> None:
    payload = fit_dead_letter(_doc(raw, raw), limit)
    assert len(payload) <= limit
    got = orjson.loads(payload)
    assert got["truncated"]["raw"] == got["truncated"]["value"] == len(raw)
    assert got["raw"].endswith("…") and len(got["raw"]) > 100
    assert (got["source"], got["reason"], got["headers"]) == (
        "access[0]@7",
        "expected '[' at column 9",
        {"shipper": "test"},
    )
