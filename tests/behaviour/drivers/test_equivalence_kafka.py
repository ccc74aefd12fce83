"""One answer from every driver (#18): ``run`` on the real broker, on the lab recording in New York time.

Both clients, on 1 and 4 partitions per topic; every record is produced before the service starts, with an
``idle_timeout_s`` of 0, so the catch-up is always slower than the idle timeout (before #18 the partitions not
fetched yet counted as idle and windows closed early); one service is killed with SIGKILL halfway and a second
one resumes from the committed offsets. The incidents are replay's: the same set of (``event.id``, cause, pool),
copies of one incident equal apart from the run-dependent fields the README names.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.behaviour.drivers import lab_kafka as lk
from tests.behaviour.drivers.lab_logs import comparable, key, lab_copy
from tests.fixtures.kafka import KafkaBroker
from tests.runners.test_service import ServiceProc, Setup

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ZONE = "America/New_York"


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_run_gives_replays_answer_across_a_slow_catch_up_and_a_kill_9(
    kafka_broker: KafkaBroker, tmp_path: Path, client: str, partitions: int
) -> None:
    kafka_broker.start()
    logs = lab_copy(tmp_path / "logs", ZONE)
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"eq-{i}-{tag}", partitions) for i in range(len(lk.INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"eq-{k}-{tag}") for k in ("incidents", "dead")}
    config = lk.service_config(
        tmp_path / "badgateway.toml",
        kafka_broker.bootstrap,
        client,
        f"eq-{tag}",
        topics,
        outputs,
        diagnosis={"timezone": ZONE, "idle_timeout_s": 0.0},
    )
    expected = lk.as_json("incident", lk.replay_expected(config, logs).incidents)
    assert len(expected) == 41

    lk.produce_lines(kafka_broker.bootstrap, lk.lab_lines(logs, topics))
    ends = lk.end_offsets(kafka_broker.bootstrap, topics, partitions)

    setup = Setup(kafka_broker, outputs, partitions, config, tmp_path)
    first = ServiceProc(setup, "first")
    deadline = time.monotonic() + 60
    while sum(first.positions().values()) < sum(ends.values()) // 2:  # halfway through the backlog
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.05)
    first.kill()
    second = ServiceProc(setup, "second")
    second.wait_caught_up(ends)
    second.terminate()

    got = setup.read("incidents")
    assert {key(i) for i in got} == {key(i) for i in expected}
    want = {i["event"]["id"]: comparable(i, late=False) for i in expected}
    for inc in got:
        inc = {k: v for k, v in inc.items() if k not in ("_key", "_headers")}
        assert comparable(inc, late=False) == want[inc["event"]["id"]], inc["event"]["id"]
