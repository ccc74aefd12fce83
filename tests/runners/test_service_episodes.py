"""``outputs.episodes_topic`` on the real broker (#21), with both clients and both delivery modes: the lab
recording, killed with SIGKILL at seeded random moments of the catch-up and restarted each time, must give every
episode record replay gives — no ``(episode.id, sequence)`` lost, every copy of one identical (never contradicted),
and with exactly-once no copy at all."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.behaviour.drivers import lab_kafka as lk
from tests.behaviour.drivers.lab_logs import lab_copy
from tests.fixtures.kafka import KafkaBroker
from tests.runners.test_service import ServiceProc, Setup

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(400)]


def _by_sequence(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["episode"]["id"], r["episode"]["sequence"]): r for r in records}


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_episodes_survive_kill_9_at_random_moments(
    kafka_broker: KafkaBroker, tmp_path: Path, client: str, exactly_once: bool
) -> None:
    kafka_broker.start()
    logs = lab_copy(tmp_path / "logs", "UTC")
    tag = uuid.uuid4().hex[:8]
    partitions = 2
    topics = [kafka_broker.create_topic(f"ep-{i}-{tag}", partitions) for i in range(len(lk.INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"ep-{k}-{tag}") for k in ("incidents", "dead", "episodes")}
    config = lk.service_config(
        tmp_path / "badgateway.toml",
        kafka_broker.bootstrap,
        client,
        f"ep-{tag}",
        topics,
        outputs,
        diagnosis={"idle_timeout_s": 0.0},
        delivery={"commit_interval_s": 0.3, "exactly_once": exactly_once},
    )
    expected = _by_sequence(lk.as_json("episode", lk.replay_expected(config, logs).episodes))
    assert len({i for i, _ in expected}) == 15

    lk.produce_lines(kafka_broker.bootstrap, lk.lab_lines(logs, topics))
    ends = lk.end_offsets(kafka_broker.bootstrap, topics, partitions)
    total = sum(ends.values())

    setup = Setup(kafka_broker, outputs, partitions, config, tmp_path)
    rnd = random.Random(f"{client}-{exactly_once}")
    for n, share in enumerate(sorted(rnd.uniform(0.1, 0.9) for _ in range(2))):
        proc = ServiceProc(setup, f"killed-{n}")
        deadline = time.monotonic() + 90
        while sum(proc.positions().values()) < total * share:
            assert proc.proc.poll() is None and time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.02)
        time.sleep(rnd.uniform(0, 0.5))
        proc.kill()
    last = ServiceProc(setup, "last")
    last.wait_caught_up(ends, timeout_s=90)
    time.sleep(1.0)  # a commit or two after catching up, then one more kill -9: a crash with nothing in flight
    last.kill()
    final = ServiceProc(setup, "final")
    final.wait_caught_up(ends, timeout_s=90)
    final.terminate()

    got = setup.read("episodes", "read_committed" if exactly_once else "read_uncommitted")
    assert {r["_key"] for r in got} == {b"lab"}
    plain = [{k: v for k, v in r.items() if k not in ("_key", "_headers")} for r in got]
    copies: dict[tuple[str, int], dict[str, Any]] = {}
    for r in plain:
        k = (r["episode"]["id"], r["episode"]["sequence"])
        assert copies.setdefault(k, r) == r, f"two different records for {k}"  # never contradicted
    assert set(copies) == set(expected)  # none lost, none made up
    for k, r in copies.items():
        assert r == expected[k], k
    if exactly_once:
        assert len(plain) == len(copies)  # no duplicate at all
