"""One answer from every driver (#18): ``run`` on the real broker, on the lab recording in New York time.

Both clients, on 1 and 4 partitions per topic; every record is produced before the service starts, with an
``idle_timeout_s`` of 0, so the catch-up is always slower than the idle timeout (before #18 the partitions not
fetched yet counted as idle and windows closed early); one service is killed with SIGKILL halfway and a second
one resumes from the committed offsets. The incidents are replay's: the same set of (``event.id``, cause, pool),
copies of one incident equal apart from the run-dependent fields the README names.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from processor.configs.knowledge import load_knowledge
from processor.io.sinks import MemorySink, serialise
from processor.pipeline import Output
from processor.runners.replay import plan_inputs, replay
from processor.runners.service import pipeline_factory
from processor.runners.service_config import load_config
from tests.behaviour.drivers.lab_logs import LAB, comparable, key, lab_copy
from tests.fixtures.kafka import KafkaBroker
from tests.runners.test_service import ServiceProc, Setup

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ZONE = "America/New_York"
INPUTS = [
    ("access.log", "nginx_access", "lab"),
    ("access_combined.log", "nginx_access", "combined"),
    ("error.log", "nginx_error", ""),
    ("php-fpm.log", "php_fpm", ""),
    ("php-fpm-legacy.log", "php_fpm", ""),
    ("php-fpm-reports.log", "php_fpm", ""),
    ("slow.log", "php_fpm_slowlog", ""),
]


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_run_gives_replays_answer_across_a_slow_catch_up_and_a_kill_9(
    kafka_broker: KafkaBroker, tmp_path: Path, client: str, partitions: int
) -> None:
    kafka_broker.start()
    logs = lab_copy(tmp_path / "logs", ZONE)
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"eq-{i}-{tag}", partitions) for i in range(len(INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"eq-{k}-{tag}") for k in ("incidents", "dead")}
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
group_id = "eq-{tag}"
session_timeout_s = 6.0

{inputs}
[outputs]
incidents_topic = "{outputs["incidents"]}"
dead_letter_topic = "{outputs["dead"]}"

[diagnosis]
nginx_conf = "{LAB / "conf" / "nginx.conf"}"
fpm_conf = {json.dumps(fpm_confs)}
timezone = "{ZONE}"
idle_timeout_s = 0.0

[delivery]
commit_interval_s = 0.5
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
    expected = [json.loads(serialise(Output("incident", i, None))) for i in sink.incidents]
    assert len(expected) == 41

    lines = {t: (logs / p).read_bytes().splitlines() for t, (p, _, _) in zip(topics, INPUTS)}
    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for topic, records in lines.items():
        for line in records:
            p.send(topic, value=line, key=b"lab")
    p.flush()
    p.close()
    c = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    ends = c.end_offsets([TopicPartition(t, n) for t in topics for n in range(partitions)])
    c.close()

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
