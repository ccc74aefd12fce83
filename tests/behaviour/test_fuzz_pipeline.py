"""Fuzzing the replay path: mutated real lines through the whole pipeline.

Nothing raises, lines in = parsed + dead-lettered, and no line takes long. The CI profile runs a few hundred
examples; ``-m slow`` runs the long profile (set BADGATEWAY_FUZZ_EXAMPLES, default 1,000,000 inputs).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.core.events import LOG_TYPES, Record, SourceRef
from processor.io.sinks import serialise
from processor.pipeline import Pipeline, PipelineSettings

CORPUS = Path(__file__).parent.parent / "corpus"
SEEDS = [
    line
    for d in ("nginx-access", "nginx-error", "php-fpm")
    for f in sorted((CORPUS / d).glob("*.log"))
    for line in f.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    if line.strip()
]
MAX_LINE_S = 2.0


def mutate(rnd: random.Random, line: str) -> str:
    data = bytearray(line.encode("utf-8", "surrogateescape"))
    op = rnd.randrange(9)
    if op == 0 and data:  # bit flips
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(data))
            data[i] ^= 1 << rnd.randrange(8)
    elif op == 1:  # truncation
        del data[rnd.randint(0, len(data)) :]
    elif op == 2:  # splice two real lines
        other = rnd.choice(SEEDS).encode("utf-8", "surrogateescape")
        data = data[: rnd.randint(0, len(data))] + other[rnd.randint(0, len(other)) :]
    elif op == 3:  # NUL and control bytes
        for _ in range(rnd.randint(1, 5)):
            data.insert(rnd.randint(0, len(data)), rnd.choice([0, 1, 7, 27, 127]))
    elif op == 4:  # invalid UTF-8
        data.insert(rnd.randint(0, len(data)), rnd.choice([0xFF, 0xC3, 0xE2, 0x80]))
    elif op == 5:  # a huge field
        at = rnd.randint(0, len(data))
        data[at:at] = b"A" * rnd.choice([4096, 65536, 1 << 20])
    elif op == 6:  # many quotes
        at = rnd.randint(0, len(data))
        data[at:at] = b'"' * rnd.choice([100, 10_000, 100_000])
    elif op == 7:  # doubled separators
        data = data.replace(b", ", b", , ").replace(b" ", b"  ", 3)
    return data.decode("utf-8", "surrogateescape")


def run_fuzz(rnd: random.Random, n: int) -> float:
    """Feeds n mutated lines; returns the worst time one line took (seconds)."""
    worst = 0.0
    pipeline = Pipeline(PipelineSettings(emit_events=True))
    for i in range(n):
        text = mutate(rnd, rnd.choice(SEEDS))
        log_type = rnd.choice((None, *LOG_TYPES))
        started = time.perf_counter()
        outs = pipeline.feed(Record(text, SourceRef("fuzz.log", i + 1), log_type, "h"))
        for out in outs:
            orjson.loads(serialise(out))  # every output serialises to valid JSON
        took = time.perf_counter() - started
        worst = max(worst, took)
        assert took < MAX_LINE_S, (log_type, text[:200])
    for out in pipeline.flush():
        orjson.loads(serialise(out))
    c = pipeline.counters
    assert c.lines_in == n == c.lines_parsed + c.lines_dead_lettered
    return worst


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_mutated_corpus_lines_never_crash_and_are_all_accounted(seed: int) -> None:
    run_fuzz(random.Random(seed), 25)


@pytest.mark.slow
def test_long_fuzz_profile() -> None:
    total = int(os.environ.get("BADGATEWAY_FUZZ_EXAMPLES", "1000000"))
    started = time.perf_counter()
    worst = run_fuzz(random.Random(20261124), total)
    print(f"\n{total:,} fuzzed inputs in {time.perf_counter() - started:.0f}s; worst line {worst * 1000:.0f} ms")
