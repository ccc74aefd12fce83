"""kafka-python against the real Apache Kafka 4.3 broker: what `badgateway run` relies on, before it relies on it.

Plain produce/consume, consumer-group commit and resume, durability across a broker stop/start and a kill -9,
and a spike on kafka-python's transactional producer (the `exactly_once = true` question of issue 5).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from tests.fixtures.kafka import KafkaBroker, TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

POLL_TIMEOUT_S = 30.0


def group_id() -> str:
    return f"bg-test-{uuid.uuid4().hex[:8]}"


@contextmanager
def producer(broker: KafkaBroker, **configs: Any) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, **configs)
    try:
        yield p
    finally:
        p.close(timeout=10)


@contextmanager
def consumer(broker: KafkaBroker, *topics: str, **configs: Any) -> Iterator[KafkaConsumer]:
    # A short session (the broker's minimum): if a closed member's LeaveGroup gets lost on a loaded machine, the
    # next member of the group waits 6 s for it to expire instead of kafka-python's default 45 s.
    settings: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
    }
    settings.update(configs)
    c = KafkaConsumer(*topics, bootstrap_servers=broker.bootstrap, **settings)
    try:
        yield c
    finally:
        c.close(autocommit=False)


def drain(c: KafkaConsumer, n: int, timeout_s: float = POLL_TIMEOUT_S) -> list[ConsumerRecord]:
    """Poll until `n` records arrived (fail if fewer come before the timeout), then `n` records exactly."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < n:
        assert time.monotonic() < deadline, f"got {len(records)} of {n} records in {timeout_s}s"
        for batch in c.poll(timeout_ms=500, max_records=n - len(records)).values():
            records.extend(batch)
    return records


def quiet(c: KafkaConsumer, wait_s: float = 2.0) -> list[ConsumerRecord]:
    """Whatever else arrives within `wait_s` (to prove nothing more is visible)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for batch in c.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def produce(broker: KafkaBroker, topic: str, values: list[bytes], **configs: Any) -> None:
    with producer(broker, **configs) as p:
        futures = [p.send(topic, value=v, key=v[-2:]) for v in values]
        p.flush()
        for f in futures:
            f.get(timeout=10)


def values_of(records: list[ConsumerRecord]) -> list[bytes]:
    return [r.value for r in records]


# --- plain produce / consume ----------------------------------------------------------------------------------


def test_produce_and_consume_1000_records(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics(partitions=3)
    sent = [b"line %04d" % i for i in range(1000)]
    produce(kafka_broker, topic, sent)

    with consumer(kafka_broker, topic, group_id=group_id()) as c:
        got = drain(c, 1000)
        assert quiet(c, 1.0) == []
    assert sorted(values_of(got)) == sent
    # Within a partition Kafka keeps the send order (one producer, idempotent by default).
    for partition in range(3):
        in_partition = [r.value for r in got if r.partition == partition]
        assert in_partition == sorted(in_partition)
        assert in_partition, f"partition {partition} got no record: keys did not spread"


def test_group_commits_and_a_new_member_resumes_there(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics()
    tp = TopicPartition(topic, 0)
    produce(kafka_broker, topic, [b"r%03d" % i for i in range(100)])
    group = group_id()

    with consumer(kafka_broker, topic, group_id=group) as first:
        head = drain(first, 40)
        first.commit({tp: OffsetAndMetadata(head[-1].offset + 1, "", -1)})
    assert values_of(head) == [b"r%03d" % i for i in range(40)]

    with consumer(kafka_broker, topic, group_id=group) as second:
        assert second.committed(tp) == 40
        rest = drain(second, 60)
        assert quiet(second, 1.0) == []
    assert values_of(rest) == [b"r%03d" % i for i in range(40, 100)]


# --- broker faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_data_and_committed_offsets_survive_a_broker_restart(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory, fault: str
) -> None:
    topic = kafka_topics(partitions=2)
    sent = [b"d%03d" % i for i in range(200)]
    produce(kafka_broker, topic, sent)
    group = group_id()
    with consumer(kafka_broker, topic, group_id=group) as c:
        drain(c, 200)
        c.commit()
        committed = {p: c.committed(TopicPartition(topic, p)) for p in (0, 1)}
    assert sum(o or 0 for o in committed.values()) == 200

    try:
        # "stop" is a clean shutdown (SIGTERM); "kill" is SIGKILL: no flush, log recovery on start.
        kafka_broker.stop() if fault == "stop" else kafka_broker.kill()
        assert not kafka_broker.is_running
    finally:
        kafka_broker.start()

    with consumer(kafka_broker, topic, group_id=group) as c:
        assert {p: c.committed(TopicPartition(topic, p)) for p in (0, 1)} == committed
        assert quiet(c, 2.0) == []
    with consumer(kafka_broker, topic, group_id=group_id()) as fresh:
        assert sorted(values_of(drain(fresh, 200))) == sent


def test_a_client_rides_out_a_broker_restart(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    """The same producer and consumer objects keep working across the restart (what the service will need)."""
    topic = kafka_topics()
    with producer(kafka_broker, retries=2**31 - 1) as p, consumer(kafka_broker, topic, group_id=group_id()) as c:
        for i in range(50):
            p.send(topic, b"before %02d" % i)
        p.flush()
        before = drain(c, 50)
        try:
            kafka_broker.stop()
        finally:
            kafka_broker.start()
        futures = [p.send(topic, b"after %02d" % i) for i in range(50)]
        p.flush(timeout=60)
        for f in futures:
            f.get(timeout=30)
        wanted = [b"before %02d" % i for i in range(50)] + [b"after %02d" % i for i in range(50)]
        after = drain_until(c, set(wanted[50:]), timeout_s=60)
    # The guarantee is at least once: every record, none lost, nothing never produced, in the log's order on first
    # sight. A client may read some again after the restart (kafka-python 3.0.12 re-reads the 50 "before" ones).
    values = values_of(before + after)
    assert set(values) == set(wanted)
    assert list(dict.fromkeys(values)) == wanted


def drain_until(c: KafkaConsumer, wanted: set[bytes], timeout_s: float = POLL_TIMEOUT_S) -> list[ConsumerRecord]:
    """Poll until every value of `wanted` arrived (fail if one is missing at the timeout); repeats are kept."""
    records: list[ConsumerRecord] = []
    missing = set(wanted)
    deadline = time.monotonic() + timeout_s
    while missing:
        assert time.monotonic() < deadline, f"{len(missing)} of {len(wanted)} records missing after {timeout_s}s"
        for batch in c.poll(timeout_ms=500).values():
            records.extend(batch)
            missing.difference_update(r.value for r in batch)
    return records


# --- transactions spike ---------------------------------------------------------------------------------------


@contextmanager
def transactional_producer(broker: KafkaBroker, transactional_id: str | None = None) -> Iterator[KafkaProducer]:
    with producer(broker, transactional_id=transactional_id or f"bg-tx-{uuid.uuid4().hex[:8]}") as p:
        p.init_transactions()
        yield p


def test_read_committed_sees_committed_transactions_only(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics(partitions=2)
    with transactional_producer(kafka_broker) as p:
        for tx in range(20):
            p.begin_transaction()
            for i in range(10):
                p.send(topic, key=b"k%d" % i, value=b"tx%02d-%d" % (tx, i))
            if tx % 2:
                p.flush()  # the aborted records really reach the log, then get aborted
                p.abort_transaction()
            else:
                p.commit_transaction()
    committed = sorted(b"tx%02d-%d" % (tx, i) for tx in range(0, 20, 2) for i in range(10))

    with consumer(kafka_broker, topic, group_id=group_id(), isolation_level="read_committed") as c:
        got = drain(c, len(committed))
        assert quiet(c, 2.0) == []
    assert sorted(values_of(got)) == committed

    with consumer(kafka_broker, topic, group_id=group_id(), isolation_level="read_uncommitted") as c:
        # The aborted records are in the log; only read_committed hides them.
        assert len(drain(c, 200)) == 200


def test_consume_transform_produce_commits_offsets_in_the_transaction(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    source, sink = kafka_topics(suffix="in"), kafka_topics(suffix="out")
    tp = TopicPartition(source, 0)
    produce(kafka_broker, source, [b"in%03d" % i for i in range(100)])
    group = group_id()

    with (
        transactional_producer(kafka_broker) as p,
        consumer(kafka_broker, source, group_id=group, isolation_level="read_committed") as c,
    ):
        done = 0
        while done < 100:
            batch = drain(c, min(25, 100 - done))
            p.begin_transaction()
            for r in batch:
                p.send(sink, r.value.replace(b"in", b"out"))
            p.send_offsets_to_transaction({tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}, c.group_metadata())
            p.commit_transaction()
            done += len(batch)

        # One more transaction, aborted: neither its output nor its offsets may become visible.
        produce(kafka_broker, source, [b"in%03d" % i for i in range(100, 110)])
        batch = drain(c, 10)
        p.begin_transaction()
        for r in batch:
            p.send(sink, r.value.replace(b"in", b"out"))
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}, c.group_metadata())
        p.flush()
        p.abort_transaction()

    with consumer(kafka_broker, source, group_id=group, isolation_level="read_committed") as resumed:
        assert resumed.committed(tp) == 100
        assert values_of(drain(resumed, 10)) == [b"in%03d" % i for i in range(100, 110)]
    with consumer(kafka_broker, sink, group_id=group_id(), isolation_level="read_committed") as out:
        assert values_of(drain(out, 100)) == [b"out%03d" % i for i in range(100)]
        assert quiet(out, 2.0) == []


def test_a_new_producer_with_the_same_transactional_id_fences_the_old_one(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory
) -> None:
    """A restarted service instance takes over its transactional id; the zombie can no longer commit."""
    topic = kafka_topics()
    txid = f"bg-tx-{uuid.uuid4().hex[:8]}"
    with transactional_producer(kafka_broker, txid) as zombie:
        zombie.begin_transaction()
        zombie.send(topic, b"zombie")
        zombie.flush()
        with transactional_producer(kafka_broker, txid) as successor:
            # init_transactions aborted the zombie's open transaction.
            successor.begin_transaction()
            successor.send(topic, b"successor")
            successor.commit_transaction()
            with pytest.raises(KafkaError):
                zombie.commit_transaction()

    with consumer(kafka_broker, topic, group_id=group_id(), isolation_level="read_committed") as c:
        assert values_of(drain(c, 1)) == [b"successor"]
        assert quiet(c, 2.0) == []


def test_transactions_continue_after_a_broker_restart(kafka_broker: KafkaBroker, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics()
    with transactional_producer(kafka_broker) as p:
        p.begin_transaction()
        p.send(topic, b"before")
        p.commit_transaction()
        try:
            kafka_broker.stop()
        finally:
            kafka_broker.start()
        for i in range(5):
            p.begin_transaction()
            p.send(topic, b"after %d" % i)
            p.commit_transaction()

    with consumer(kafka_broker, topic, group_id=group_id(), isolation_level="read_committed") as c:
        assert values_of(drain(c, 6)) == [b"before"] + [b"after %d" % i for i in range(5)]


@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_an_open_transaction_commits_after_a_broker_restart(
    kafka_broker: KafkaBroker, kafka_topics: TopicFactory, fault: str
) -> None:
    """Records and offsets sent, broker down before the commit: the coordinator's state survives, the commit lands."""
    source, sink = kafka_topics(suffix="in"), kafka_topics(suffix="out")
    tp = TopicPartition(source, 0)
    produce(kafka_broker, source, [b"in%02d" % i for i in range(20)])
    group = group_id()
    with (
        transactional_producer(kafka_broker) as p,
        consumer(kafka_broker, source, group_id=group, isolation_level="read_committed") as c,
    ):
        batch = drain(c, 20)
        p.begin_transaction()
        for r in batch:
            p.send(sink, r.value.replace(b"in", b"out"))
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}, c.group_metadata())
        p.flush()
        try:
            kafka_broker.stop() if fault == "stop" else kafka_broker.kill()
        finally:
            kafka_broker.start()
        p.commit_transaction()

    # read_committed: kafka-python then asks for stable offsets (KIP-447) and waits out the commit markers,
    # which the broker writes after commit_transaction() returns; read_uncommitted could see the older offset.
    with consumer(kafka_broker, source, group_id=group, isolation_level="read_committed") as resumed:
        assert resumed.committed(tp) == 20
    with consumer(kafka_broker, sink, group_id=group_id(), isolation_level="read_committed") as out:
        assert values_of(drain(out, 20)) == [b"out%02d" % i for i in range(20)]
        assert quiet(out, 2.0) == []
