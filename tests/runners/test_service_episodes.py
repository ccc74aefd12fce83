"""``outputs.episodes_topic`` on the real broker (#21), with both clients and both delivery modes: the lab
recording, killed with SIGKILL at seeded random moments of the catch-up and restarted each time, must give every
episode record replay gives — no ``(episode.id, sequence)`` lost, every copy of one identical (never contradicted),
and with exactly-once no copy at all."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from processor.configs.knowledge import load_knowledge
from processor.io.sinks import MemorySink, serialise
from processor.pipeline import Output
from processor.runners.replay import plan_inputs, replay
from processor.runners.service import pipeline_factory
from processor.runners.service_config import load_config
from tests.behaviour.drivers.lab_logs import LAB, lab_copy
from tests.behaviour.drivers.test_equivalence_kafka import INPUTS
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
    topics = [kafka_broker.create_topic(f"ep-{i}-{tag}", partitions) for i in range(len(INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"ep-{k}-{tag}") for k in ("incidents", "dead", "episodes")}
    fpm_confs = [str(LAB / "conf" / n) for n in ("php-fpm.conf", "php-fpm-legacy.conf", "php-fpm-reports.conf")]
    inputs = "".join(
        f'[[inputs]]\ntopic = "{t}"\ntype = "{kind}"\nformat = "{fmt}"\nenvelope = "raw"\n\n'
        for t, (_, kind, fmt) in zip(topics, INPUTS)
    )
    config = tmp_path / "badgateway.toml"
    config.write_text(f"""
[kafka]
client = "{client}"
bootstrap_servers = "{kafka_broker.bootstrap}"
group_id = "ep-{tag}"
session_timeout_s = 6.0

{inputs}
[outputs]
incidents_topic = "{outputs["incidents"]}"
dead_letter_topic = "{outputs["dead"]}"
episodes_topic = "{outputs["episodes"]}"

[diagnosis]
nginx_conf = "{LAB / "conf" / "nginx.conf"}"
fpm_conf = {json.dumps(fpm_confs)}
idle_timeout_s = 0.0

[delivery]
commit_interval_s = 0.3
exactly_once = {str(exactly_once).lower()}
""")
    cfg = load_config(str(config), environ={})
    knowledge = load_knowledge(cfg.diagnosis.nginx_conf, list(cfg.diagnosis.fpm_conf))
    pipeline = pipeline_factory(cfg)[0]()
    sink = MemorySink()
    replay(
        pipeline,
        plan_inputs(
            pipeline, [str(logs / p) for p, _, _ in INPUTS], host="lab", format_by_path=knowledge.format_by_path
        ),
        sink,
    )
    expected = _by_sequence([json.loads(serialise(Output("episode", r, None))) for r in sink.episodes])
    assert len({i for i, _ in expected}) == 15

    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for topic, (path, _, _) in zip(topics, INPUTS):
        for line in (logs / path).read_bytes().splitlines():
            p.send(topic, value=line, key=b"lab")
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    ends = c.end_offsets([TopicPartition(t, n) for t in topics for n in range(partitions)])
    c.close()
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
