"""``timezone = "auto"`` in the Kafka service (#18): a New York host's offset learned from its access lines,
as ``replay`` learns it, although its NGINX error and PHP-FPM records arrive first.

The lab recording written in New York time; its error, PHP-FPM and slowlog records are produced, the service reads
them all and holds them (none can be placed in time yet), commits none of them, and is killed with SIGKILL; a
second service reads them again and holds them, then the access records are produced. The incidents are
replay's (``--timezone auto``): the same set of (``event.id``, cause, pool), one per request, no fallback.
Then two hosts in two zones sharing a partition, and a host without access lines (read in UTC, with a warning).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import tzinfo
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.behaviour.drivers import lab_kafka as lk
from tests.behaviour.drivers.lab_logs import comparable, key, lab_copy
from tests.fixtures.kafka import KafkaBroker
from tests.runners.test_service import ServiceProc, Setup

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ZONE = "America/New_York"
HELD = "badgateway_timezone_held_records"


@pytest.fixture
def setups() -> Iterator[list[Setup]]:
    """The tests' service processes, killed if a test failed midway (no orphan keeps running)."""
    made: list[Setup] = []
    yield made
    for setup in made:
        for svc in setup.services:
            if svc.proc.poll() is None:
                svc.kill()


def _gauge(svc: ServiceProc, name: str) -> float:
    try:
        return sum(v for _, v in svc.metrics().get(name, []))
    except OSError:
        return -1


def _wait_held(svc: ServiceProc, count: int) -> None:
    deadline = time.monotonic() + 60
    while _gauge(svc, HELD) != count:
        assert time.monotonic() < deadline, f"held {_gauge(svc, HELD)} of {count}\n{svc.log_tail()}"
        time.sleep(0.1)


def _config(
    path: Path,
    broker: KafkaBroker,
    client: str,
    group: str,
    topics: list[str],
    outputs: dict[str, str],
    idle_timeout_s: float = 30.0,
) -> Path:
    diagnosis = {"timezone": "auto", "idle_timeout_s": idle_timeout_s}
    return lk.service_config(path, broker.bootstrap, client, group, topics, outputs, diagnosis=diagnosis)


@pytest.mark.parametrize("partitions", [1, 4])
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_auto_learns_a_new_york_host_whose_error_and_fpm_records_come_first(
    kafka_broker: KafkaBroker, tmp_path: Path, setups: list[Setup], client: str, partitions: int
) -> None:
    kafka_broker.start()
    logs = lab_copy(tmp_path / "logs", ZONE)
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"tz-{i}-{tag}", partitions) for i in range(len(lk.INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"tz-{k}-{tag}") for k in ("incidents", "dead")}
    group = f"tz-{tag}"
    config = _config(tmp_path / "badgateway.toml", kafka_broker, client, group, topics, outputs)
    expected = lk.as_json("incident", lk.replay_expected(config, logs, learned={}).incidents)
    assert len(expected) == 41

    lines = lk.lab_lines(logs, topics)
    access = [t for t, (_, kind, _) in zip(topics, lk.INPUTS) if kind == "nginx_access"]
    offsetless = [t for t in topics if t not in access]

    def produce(which: list[str]) -> None:
        lk.produce_lines(kafka_broker.bootstrap, {t: lines[t] for t in which})

    produce(offsetless)
    waiting = sum(len(lines[t]) for t in offsetless)
    setup = Setup(kafka_broker, outputs, partitions, config, tmp_path)
    setups.append(setup)
    first = ServiceProc(setup, "first")
    _wait_held(first, waiting)  # every one read, none placed in time: the host's offset is not known yet
    time.sleep(1.5)  # three commit intervals
    reader = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, group_id=group, enable_auto_commit=False)
    committed = {
        tp: reader.committed(tp) for tp in (TopicPartition(t, n) for t in offsetless for n in range(partitions))
    }
    reader.close()
    assert set(committed.values()) <= {None, 0}, committed  # nothing held is committed
    first.kill()

    second = ServiceProc(setup, "second")
    _wait_held(second, waiting)  # read again from the committed offsets
    produce(access)
    ends = {TopicPartition(t, n): 0 for t in topics for n in range(partitions)}
    ends.update(lk.end_offsets(kafka_broker.bootstrap, topics, partitions))
    second.wait_caught_up(ends)
    deadline = time.monotonic() + 30
    while _gauge(second, HELD) != 0:
        assert time.monotonic() < deadline, second.log_tail()
        time.sleep(0.1)
    final = second.terminate()
    assert "timezone.fallback" not in second.log_path.read_text()
    assert final["records_in"] == sum(len(v) for v in lines.values())

    got = setup.read("incidents")
    assert {key(i) for i in got} == {key(i) for i in expected}
    assert len({i["event"]["id"] for i in got}) == len(got) == 41  # one incident per request, none twice
    want = {i["event"]["id"]: comparable(i, late=False) for i in expected}
    for inc in got:
        inc = {k: v for k, v in inc.items() if k not in ("_key", "_headers")}
        assert comparable(inc, late=False) == want[inc["event"]["id"]], inc["event"]["id"]


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_auto_learns_two_zones_sharing_a_partition(
    kafka_broker: KafkaBroker, tmp_path: Path, setups: list[Setup], client: str
) -> None:
    """A New York host and a Paris host on one partition of each topic, their lines interleaved, every error
    and PHP-FPM record before any access record: a partition blocked by one host's record keeps its order (the
    other host's records wait behind it), and each host gets its own offset."""
    kafka_broker.start()
    hosts = {"ny": "America/New_York", "paris": "Europe/Paris"}
    logs = {h: lab_copy(tmp_path / h, zone) for h, zone in hosts.items()}
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"tz2-{i}-{tag}") for i in range(len(lk.INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"tz2-{k}-{tag}") for k in ("incidents", "dead")}
    config = _config(
        tmp_path / "badgateway.toml", kafka_broker, client, f"tz2-{tag}", topics, outputs, idle_timeout_s=0.0
    )
    zones: dict[str, tzinfo] = {}
    expected = lk.as_json("incident", lk.replay_expected(config, logs, learned=zones).incidents)
    assert zones["ny"].utcoffset(None) != zones["paris"].utcoffset(None)
    assert len(expected) == 82

    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for kinds in (lambda k: k != "nginx_access", lambda k: k == "nginx_access"):
        for topic, (name, kind, _) in zip(topics, lk.INPUTS):
            if kinds(kind):
                ny, paris = ((logs[h] / name).read_bytes().splitlines() for h in hosts)
                for i in range(max(len(ny), len(paris))):  # ny first: the partition is blocked by ny's record
                    for host, lines in (("ny", ny), ("paris", paris)):
                        if i < len(lines):
                            p.send(topic, value=lines[i], key=host.encode())
    p.flush()
    p.close()
    setup = Setup(kafka_broker, outputs, 1, config, tmp_path)
    setups.append(setup)
    svc = ServiceProc(setup, "svc")
    svc.wait_caught_up(lk.end_offsets(kafka_broker.bootstrap, topics, 1))
    svc.terminate()  # (records in = parsed + dead-lettered: checked there)
    assert "timezone.fallback" not in svc.log_path.read_text()

    got = setup.read("incidents")
    assert {key(i) for i in got} == {key(i) for i in expected}
    assert len({i["event"]["id"] for i in got}) == len(got) == 82


def test_auto_reads_a_host_without_access_lines_in_utc_and_says_so(
    kafka_broker: KafkaBroker, tmp_path: Path, setups: list[Setup]
) -> None:
    """A host whose access log is not among the inputs blocks its partition until the access partition is read
    to its end (and ``idle_timeout_s``, 0 here, passed); then it is read in UTC, a warning names it, and the
    records behind it (the New York host's) go on: replay's answer for them."""
    kafka_broker.start()
    logs = lab_copy(tmp_path / "logs", ZONE)
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"tz3-{i}-{tag}") for i in range(len(lk.INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"tz3-{k}-{tag}") for k in ("incidents", "dead")}
    config = _config(
        tmp_path / "badgateway.toml", kafka_broker, "kafka-python", f"tz3-{tag}", topics, outputs, idle_timeout_s=0.0
    )
    expected = {key(i) for i in lk.as_json("incident", lk.replay_expected(config, logs, learned={}).incidents)}

    error = topics[[kind for _, kind, _ in lk.INPUTS].index("nginx_error")]
    p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    p.send(error, value=b'2026/11/24 07:41:41 [notice] 1#1: using the "epoll" event method', key=b"ghost")
    for topic, (name, _, _) in zip(topics, lk.INPUTS):
        for line in (logs / name).read_bytes().splitlines():
            p.send(topic, value=line, key=b"lab")
    p.flush()
    p.close()
    setup = Setup(kafka_broker, outputs, 1, config, tmp_path)
    setups.append(setup)
    svc = ServiceProc(setup, "svc")
    svc.wait_caught_up(lk.end_offsets(kafka_broker.bootstrap, topics, 1))
    deadline = time.monotonic() + 30
    while _gauge(svc, HELD) != 0:  # the fallback is decided at a tick, once the access partitions are read
        assert time.monotonic() < deadline, svc.log_tail()
        time.sleep(0.1)
    assert _gauge(svc, "badgateway_timezone_fallbacks_total") == 1
    svc.terminate()
    warnings = [json.loads(line) for line in svc.log_path.read_text().splitlines() if "timezone.fallback" in line]
    assert [(w["host"], w["timezone"]) for w in warnings] == [("ghost", "UTC")]
    got = setup.read("incidents")
    assert {key(i) for i in got} == expected and len(got) == len(expected) == 41
