"""The client interface (``processor.io.kafka.client``) on the real broker, once per implementation.

What the service relies on, asserted the same way for kafka-python and confluent-kafka: keyed records land on
``murmur2(key) % partitions`` (the Java client's partitioner) whichever client produced them, a batch comes
grouped by partition in offset order, ``on_assign`` says where each partition starts (committed offset, else the
reset policy), commits are read back by the next member, a refused record reaches ``on_error`` by the end of
``flush``, transactions carry the consumer's offsets, and an unreachable cluster is ``Unreachable`` at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from processor.io.kafka.client import TP, Backend, Consumer, Msg, Unreachable, backend
from processor.io.kafka.settings import KafkaSection
from tests.fixtures.kafka import KafkaBroker, TopicFactory, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

CLIENTS = ["kafka-python", "confluent"]
HOSTS = [f"web-{i}" for i in range(1, 41)]


@pytest.fixture(params=CLIENTS)
def cfg(request: pytest.FixtureRequest, kafka_broker: KafkaBroker) -> KafkaSection:
    kafka_broker.start()
    return KafkaSection(
        client=request.param,
        bootstrap_servers=(kafka_broker.bootstrap,),
        group_id=f"clients-{uuid.uuid4().hex[:8]}",
        session_timeout_s=6.0,
    )


@contextmanager
def subscribed(
    client: Backend, cfg: KafkaSection, topics: list[str], *, read_committed: bool = False
) -> Iterator[tuple[Consumer, list[dict[TP, int | None]]]]:
    consumer = client.make_consumer(cfg, read_committed=read_committed)
    assigned: list[dict[TP, int | None]] = []
    consumer.subscribe(topics, lambda starts: assigned.append(dict(starts)), lambda revoked: None)
    try:
        yield consumer, assigned
    finally:
        consumer.close()


def drain(consumer: Consumer, n: int, timeout_s: float = 60) -> list[Msg]:
    got: list[Msg] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        assert time.monotonic() < deadline, f"got {len(got)} of {n} records"
        batch: Mapping[TP, list[Msg]] = consumer.poll(0.5)
        for tp, records in batch.items():
            assert all(r.topic == tp.topic and r.partition == tp.partition for r in records)
            offsets = [r.offset for r in records]
            assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
            got.extend(records)
    return got


def produce(
    client: Backend,
    cfg: KafkaSection,
    topic: str,
    records: list[tuple[bytes | None, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> list[BaseException]:
    errors: list[BaseException] = []
    producer = client.make_producer(cfg)
    try:
        for key, value in records:
            producer.send(topic, value, key, headers, errors.append)
        producer.flush()
    finally:
        producer.close(10)
    return errors


def test_keyed_records_land_on_the_java_partitioners_partition(cfg: KafkaSection, kafka_topics: TopicFactory) -> None:
    # switching clients must keep every host on the partition number the shippers (and the join) use
    topic = kafka_topics(partitions=6)
    client = backend(cfg)
    assert produce(client, cfg, topic, [(h.encode(), f"line of {h}".encode()) for h in HOSTS]) == []
    c = KafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers[0], auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(6)]
        c.assign(tps)
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + 30
        while len(seen) < len(HOSTS):
            assert time.monotonic() < deadline
            for tp, records in c.poll(timeout_ms=500).items():
                seen.update({r.key: tp.partition for r in records})
    finally:
        c.close()
    expected = {h.encode(): (murmur2(h.encode()) & 0x7FFFFFFF) % 6 for h in HOSTS}
    assert seen == expected
    assert len(set(seen.values())) == 6  # 40 hosts spread over every partition: the test can tell partitioners apart


def test_batches_by_partition_start_at_the_reset_policy_and_commits_resume(
    cfg: KafkaSection, kafka_topics: TopicFactory
) -> None:
    topic = kafka_topics(partitions=3)
    client = backend(cfg)
    records = [(HOSTS[i % 12].encode(), f"record {i}".encode()) for i in range(3000)]
    assert produce(client, cfg, topic, records, headers=[("shipper", b"test")]) == []
    with subscribed(client, cfg, [topic]) as (consumer, assigned):
        got = drain(consumer, 3000)
        assert assigned == [{TP(topic, p): 0 for p in range(3)}]  # no committed offset: earliest
        assert sorted(m.value or b"" for m in got) == sorted(v for _, v in records)
        assert {tuple(m.headers or ()) for m in got} == {(("shipper", b"test"),)}
        assert consumer.highwater(TP(topic, 0)) is not None
        ends = {TP(topic, p): max(m.offset for m in got if m.partition == p) + 1 for p in range(3)}
        assert {tp: consumer.highwater(tp) for tp in ends} == ends
        # commit below the end on one partition: the next member starts exactly there
        commit = {**ends, TP(topic, 1): ends[TP(topic, 1)] - 7}
        consumer.commit(commit, blocking=True)
    with subscribed(client, cfg, [topic]) as (consumer, assigned):
        again = drain(consumer, 7)
        assert assigned == [commit]
        assert [m.offset for m in again] == list(range(commit[TP(topic, 1)], ends[TP(topic, 1)]))
        assert consumer.poll(1.0) == {}
        # rewind: every assigned partition back to its committed offset
        assert consumer.rewind() == commit
        assert [m.offset for m in drain(consumer, 7)] == [m.offset for m in again]


def test_a_refused_record_reaches_on_error_by_the_end_of_flush(cfg: KafkaSection, kafka_topics: TopicFactory) -> None:
    topic = kafka_topics(configs={"max.message.bytes": "2000"})
    client = backend(cfg)
    # flush returns (kafka-python 3.0 would raise 'Future not done' on the batch it split: worked around); the
    # refusal is reported, for the record and possibly for the batch it travelled in (librdkafka does not split)
    errors = produce(client, cfg, topic, [(b"web-1", b"ok"), (b"web-1", b"x" * 5000), (b"web-1", b"ok too")])
    assert 1 <= len(errors) <= 3
    # kafka-python: MessageSizeTooLargeError; librdkafka: MSG_SIZE_TOO_LARGE
    assert all("toolarge" in (str(e) or type(e).__name__).lower().replace("_", "") for e in errors), errors


def test_a_transaction_carries_outputs_and_the_consumers_offsets(cfg: KafkaSection, kafka_topics: TopicFactory) -> None:
    src, out = kafka_topics(suffix="in"), kafka_topics(suffix="out")
    client = backend(cfg)
    assert produce(client, cfg, src, [(b"web-1", f"r{i}".encode()) for i in range(50)]) == []
    producer = client.make_producer(cfg, f"tx-{uuid.uuid4().hex[:8]}")
    try:
        with subscribed(client, cfg, [src]) as (consumer, _):
            got = drain(consumer, 50)
            for m in got[:20]:
                producer.send(out, m.value or b"", m.key, None, pytest.fail)
            producer.send_offsets_to_transaction({TP(src, 0): 20}, consumer)
            producer.commit_transaction()
            producer.begin_transaction()
            # a second transaction, aborted: its outputs never become visible. Those still queued when it aborts
            # are purged, and librdkafka reports each as failed (_PURGE_QUEUE): that is the abort, not a fault
            purged: list[BaseException] = []
            for m in got[20:]:
                producer.send(out, m.value or b"", m.key, None, purged.append)
            producer.send_offsets_to_transaction({TP(src, 0): 50}, consumer)
            producer.abort_transaction()
    finally:
        producer.close(10)
    assert len(purged) <= 30
    with subscribed(client, cfg, [out], read_committed=True) as (reader, _):
        visible = drain(reader, 20)
        assert reader.poll(1.5) == {}
    assert [m.value for m in visible] == [f"r{i}".encode() for i in range(20)]
    with subscribed(client, cfg, [src]) as (consumer, assigned):
        drain(consumer, 30)
        assert assigned == [{TP(src, 0): 20}]  # the committed transaction's offset, not the aborted one's


def test_topic_metadata_and_topic_creation(cfg: KafkaSection, kafka_topics: TopicFactory) -> None:
    client = backend(cfg)
    three = kafka_topics(partitions=3)
    missing = f"never-created-{uuid.uuid4().hex[:8]}"
    assert client.topic_partitions(cfg, [three, missing]) == {three: 3}
    made = f"made-{uuid.uuid4().hex[:8]}"
    client.ensure_topic(cfg, made, 2)
    client.ensure_topic(cfg, made, 2)  # already there: fine
    assert client.topic_partitions(cfg, [made, missing]) == {made: 2}


def test_no_broker_is_unreachable_at_once(cfg: KafkaSection) -> None:
    dead = KafkaSection(client=cfg.client, bootstrap_servers=(f"127.0.0.1:{free_port()}",))
    client = backend(dead)
    for make in (lambda: client.make_consumer(dead), lambda: client.make_producer(dead)):
        started = time.monotonic()
        with pytest.raises(Unreachable, match="Unable to bootstrap"):
            make()
        assert time.monotonic() - started < 15


def test_confluent_without_the_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from processor.core.errors import UserConfigError

    real_import = builtins.__import__

    def no_confluent(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "confluent_kafka" or name.startswith("confluent_kafka."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_confluent)
    with pytest.raises(UserConfigError, match=r"pip install 'badgateway\[confluent\]'"):
        backend(KafkaSection(client="confluent"))
