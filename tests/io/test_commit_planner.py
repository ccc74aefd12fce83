"""The commit planner (issue #23): one pass and a worklist give the commit points of the plain fixpoint.

``CommitPlanner.plan`` must never commit past a record that an incident still being replayable needs: an incident
whose records span partitions pulls every partition's commit point down to its own record there, once any of its
records is at or after a commit point, until nothing moves. At 100 % failures the service used to compute that by
passes over every pending incident until nothing moved (4.7 s of a 20 s run); here the plan is checked against
that plain fixpoint over random partitions, offsets, held offsets, incidents and commits.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from processor.io.kafka.client import TP
from processor.io.kafka.inputs import CommitPlanner, partition_stream


def _fixpoint(
    next_: Mapping[TP, int],
    by_stream: Mapping[str, TP],
    incidents: list[list[tuple[str, int]]],
    held: Mapping[str, int],
) -> dict[TP, int]:
    """The commit points by the plain fixpoint (the planner's rule, spelled out)."""
    safe = dict(next_)
    for stream, tp in by_stream.items():
        if stream in held and tp in safe and held[stream] < safe[tp]:
            safe[tp] = held[stream]
    changed = True
    while changed:
        changed = False
        for sources in incidents:
            located = [(tp, off) for s, off in sources if (tp := by_stream.get(s)) is not None and tp in safe]
            if not any(off >= safe[tp] for tp, off in located):
                continue
            for tp, off in located:
                if off < safe[tp]:
                    safe[tp] = off
                    changed = True
    return safe


@pytest.mark.parametrize("seed", range(300))
def test_plan_is_the_fixpoint(seed: int) -> None:
    rnd = random.Random(seed)
    tps = [TP(f"t{i}", rnd.randint(0, 1)) for i in range(rnd.randint(1, 4))]
    planner = CommitPlanner()
    next_: dict[TP, int] = {}
    committed: dict[TP, int] = {}
    pending: list[list[tuple[str, int]]] = []
    for _ in range(rnd.randint(1, 4)):
        for tp in tps:
            if rnd.random() < 0.9:
                next_[tp] = rnd.randint(0, 60)
                planner.processed(tp, next_[tp])
        streams = [partition_stream(tp) for tp in next_]
        for _ in range(rnd.randint(0, 25)):
            sources = [(rnd.choice([*streams, "elsewhere[0]"]), rnd.randint(0, 60)) for _ in range(rnd.randint(1, 4))]
            if len(sources) > 1:  # (a one-record incident replays whole or not at all: never held)
                pending.append(sources)
                planner.add_sources(list(sources))
        held = {rnd.choice(streams): rnd.randint(0, 60) for _ in range(rnd.randint(0, 3))} if streams else {}
        by_stream = {partition_stream(tp): tp for tp in next_}
        safe = _fixpoint(next_, by_stream, pending, held)
        want = {tp: off for tp, off in safe.items() if off > committed.get(tp, -1)}
        assert planner.plan(held) == want
        assert planner.safe == {s: safe[tp] for s, tp in by_stream.items() if tp in safe}
        # what stays pending: the incidents with a record at or after a commit point
        pending = [
            src for src in pending if any((tp := by_stream.get(s)) is not None and off >= safe[tp] for s, off in src)
        ]
        if rnd.random() < 0.5:
            planner.mark_committed(want)
            committed.update(want)
