"""The confluent-kafka implementation of ``processor.io.kafka.client`` (librdkafka: the fast path).

Settings mirror the kafka-python client's: range assignment (partition N of every input topic in one member),
no auto-commit, acks=all with idempotence, 5 ms linger, 120 s delivery timeout, and the Java client's murmur2
partitioner for keyed records (librdkafka's default, CRC32, would put a host on another partition than a
kafka-python or Java producer does).

librdkafka runs the rebalance callbacks inside ``consume()``, in the caller's thread (``callbacks_in_poll``). A
``consume()`` that crossed a rebalance may return records fetched from the old assignment, ahead of the new
one's; such a batch is dropped, and every newly assigned partition it touched is sought back to where the
assignment started it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from itertools import groupby, repeat
from typing import Any

from confluent_kafka import Consumer as NativeConsumer
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Producer as NativeProducer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from processor.io.kafka.client import (
    TP,
    AssignCallback,
    ClientError,
    Consumer,
    Headers,
    Msg,
    RevokeCallback,
    Unreachable,
)
from processor.io.kafka.confluent_common import TIMEOUT_S, bootstrap, client_error, client_options, describe, errors
from processor.io.kafka.settings import KafkaSection
from processor.io.log import get_logger

NAME = "confluent"
MAX_RECORDS = 2000  # per consume(), as kafka-python's max_poll_records
# librdkafka's prefetch, for a consumer that keeps up: by default it stops fetching a partition once 100,000 records
# are queued and looks again only a second later (fetch.queue.backoff.ms), so a service that drains 100,000 records
# in less than a second waits on an empty queue (measured: ~100k records/s whatever the work). Memory stays bounded
# by queued.max.messages.kbytes (64 MiB by default).
FETCH_TUNING: dict[str, Any] = {
    "queued.min.messages": 1_000_000,
    "fetch.queue.backoff.ms": 10,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,  # fewer fetch round trips for one busy partition
}


class ConfluentConsumer:
    callbacks_in_poll = True

    def __init__(self, native: Any, auto_offset_reset: str) -> None:
        self.native = native
        self._reset = auto_offset_reset
        self._on_assign: AssignCallback | None = None
        self._on_revoke: RevokeCallback | None = None
        self._starts: dict[TP, int] = {}
        self._rebalanced = False

    def subscribe(self, topics: list[str], on_assign: AssignCallback, on_revoke: RevokeCallback) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke
        with errors():
            self.native.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked)

    def _revoked(self, _native: Any, partitions: list[Any]) -> None:
        self._rebalanced = True
        self._starts = {}  # the old assignment's: nothing of it is sought back (seek on it would fail)
        assert self._on_revoke is not None
        self._on_revoke([TP(tp.topic, tp.partition) for tp in partitions])

    def _assigned(self, _native: Any, partitions: list[Any]) -> None:
        self._rebalanced = True
        starts = self._resolve(partitions)
        self.native.assign([TopicPartition(tp.topic, tp.partition, off) for tp, off in starts.items()])
        self._starts = starts
        assert self._on_assign is not None
        self._on_assign(dict(starts))

    def _resolve(self, partitions: list[Any]) -> dict[TP, int]:
        """Each partition's committed offset, else its first (earliest) or end (latest) offset."""
        starts: dict[TP, int] = {}
        for tp in self.native.committed([TopicPartition(p.topic, p.partition) for p in partitions], timeout=TIMEOUT_S):
            if tp.offset >= 0:
                starts[TP(tp.topic, tp.partition)] = tp.offset
            else:
                low, high = self.native.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=TIMEOUT_S)
                starts[TP(tp.topic, tp.partition)] = low if self._reset == "earliest" else high
        return starts

    def poll(self, timeout_s: float) -> Mapping[TP, list[Msg]]:
        self._rebalanced = False
        with errors():
            # what is queued, at once; only an empty queue waits, and only for its first record: consume(n, t)
            # waits for n records or t, so a backlog's last partial batch (or a quiet input's records) waited the
            # whole tick (250 ms) for records that were not coming
            msgs = self.native.consume(MAX_RECORDS, 0)
            if not msgs:
                msgs = self.native.consume(1, timeout_s)
                if msgs:
                    msgs += self.native.consume(MAX_RECORDS - 1, 0)
        out: dict[TP, list[Msg]] = {}
        if msgs:
            failed = list(map(Message.error, msgs))
            if failed.count(None) != len(failed):
                for err in failed:
                    if err is not None:
                        self._message_error(err)
                msgs = [m for m, err in zip(msgs, failed) if err is None]
            # the fields by the C methods in map(), the records by tuple.__new__: no Python frame per record
            topics: list[str] = list(map(Message.topic, msgs))  # type: ignore[arg-type]  # a message, not an error
            parts: list[int] = list(map(Message.partition, msgs))  # type: ignore[arg-type]
            rows: list[Msg] = list(
                map(
                    tuple.__new__,
                    repeat(Msg),
                    zip(
                        topics,
                        parts,
                        map(Message.offset, msgs),
                        map(Message.key, msgs),
                        map(Message.value, msgs),
                        map(Message.headers, msgs),
                    ),
                )
            )
            at = 0
            for (topic, part), run in groupby(zip(topics, parts)):
                count = len(list(run))
                out.setdefault(TP(topic, part), []).extend(rows[at : at + count])
                at += count
        if self._rebalanced:
            # records from before the rebalance may precede the new assignment's: start those partitions again
            for tp in out:
                if tp in self._starts:
                    with errors():
                        self.native.seek(TopicPartition(tp.topic, tp.partition, self._starts[tp]))
            return {}
        return out

    @staticmethod
    def _message_error(err: KafkaError) -> None:
        if err.fatal():
            raise ClientError(f"KafkaException: {describe(err)}")
        # e.g. a topic deleted under us, a transport error: the client retries; nothing was delivered here
        get_logger().warning("kafka.consume_error", error=describe(err))

    def assignment(self) -> list[TP]:
        return [TP(tp.topic, tp.partition) for tp in self.native.assignment()]

    def rewind(self) -> dict[TP, int | None]:
        with errors():
            starts = self._resolve(self.native.assignment())
            for tp, off in starts.items():
                self.native.seek(TopicPartition(tp.topic, tp.partition, off))
        self._starts = starts
        return dict(starts)

    def commit(self, offsets: Mapping[TP, int], *, blocking: bool) -> None:
        native = [TopicPartition(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        with errors():
            self.native.commit(offsets=native, asynchronous=not blocking)

    def highwater(self, tp: TP) -> int | None:
        try:
            _, high = self.native.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
        except KafkaException:
            return None
        return None if high is None or high < 0 else int(high)

    def position(self, tp: TP) -> int | None:
        try:
            got = self.native.position([TopicPartition(tp.topic, tp.partition)])
        except KafkaException:
            return None
        return int(got[0].offset) if got and got[0].offset >= 0 else None

    def close(self) -> None:
        with errors():
            self.native.close()


class ConfluentProducer:
    def __init__(self, native: Any) -> None:
        self.native = native
        self._unserved = 0
        self._closed = False
        self._on_error: Callable[[BaseException], None] | None = None
        self._report: Callable[[Any, Any], None] | None = None

    def _reporter(self, on_error: Callable[[BaseException], None]) -> Callable[[Any, Any], None]:
        if on_error is not self._on_error:  # one delivery callback per error handler, not one per record

            def report(err: Any, _msg: Any) -> None:
                if err is not None and not self._closed:
                    on_error(ClientError(f"KafkaException: {describe(err)}", retriable=err.retriable()))

            self._on_error, self._report = on_error, report
        assert self._report is not None
        return self._report

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None,
        on_error: Callable[[BaseException], None],
    ) -> None:
        report = self._reporter(on_error)
        while True:
            try:
                if headers:
                    self.native.produce(topic, value, key, on_delivery=report, headers=headers)
                else:
                    self.native.produce(topic, value, key, on_delivery=report)
                break
            except BufferError:  # the local queue is full: let deliveries drain, then again
                self.native.poll(0.05)
            except KafkaException as exc:
                on_error(client_error(exc))
                return
        self._unserved += 1
        if self._unserved >= 1000:  # serve delivery reports now and then, or they pile up until flush
            self._unserved = 0
            self.native.poll(0)

    def flush(self) -> None:
        with errors():
            while self.native.flush(1.0) > 0:  # returns when every record is delivered or timed out
                pass
        self._unserved = 0

    def close(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            self._closed = True  # what is still queued is dropped: its failure reports are not news
            self.native.purge()
        else:
            self.native.flush(timeout_s)
        self._closed = True

    def begin_transaction(self) -> None:
        with errors():
            self.native.begin_transaction()

    def commit_transaction(self) -> None:
        with errors():
            self.native.commit_transaction(TIMEOUT_S)

    def abort_transaction(self) -> None:
        with errors():
            self.native.abort_transaction(TIMEOUT_S)

    def send_offsets_to_transaction(self, offsets: Mapping[TP, int], consumer: Consumer) -> None:
        assert isinstance(consumer, ConfluentConsumer)
        native = [TopicPartition(tp.topic, tp.partition, off) for tp, off in offsets.items()]
        with errors():
            self.native.send_offsets_to_transaction(native, consumer.native.consumer_group_metadata(), TIMEOUT_S)


def make_consumer(cfg: KafkaSection, *, read_committed: bool = False) -> ConfluentConsumer:
    with errors():
        native = NativeConsumer(
            {
                **client_options(cfg),
                "group.id": cfg.group_id,
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                "enable.auto.commit": False,  # offsets are committed by CommitPlanner's rule only
                "auto.offset.reset": cfg.auto_offset_reset,
                # range assignment gives one member partition N of every input topic: co-partitioned inputs stay joinable
                "partition.assignment.strategy": "range",
                "session.timeout.ms": int(cfg.session_timeout_s * 1000),
                **FETCH_TUNING,
            }
        )
    try:
        bootstrap(native, cfg)
    except Unreachable:
        native.close()
        raise
    return ConfluentConsumer(native, cfg.auto_offset_reset)


def make_producer(cfg: KafkaSection, transactional_id: str | None = None) -> ConfluentProducer:
    conf: dict[str, Any] = {
        **client_options(cfg),
        "acks": "all",
        "enable.idempotence": True,  # broker-side dedup of the producer's own retries
        "linger.ms": 5,
        "message.timeout.ms": 120_000,  # kafka-python's delivery_timeout_ms
        # keyed records: the Java client's (and kafka-python's) murmur2, not librdkafka's CRC32 default
        "partitioner": "murmur2_random",
    }
    if transactional_id is not None:
        conf["transactional.id"] = transactional_id
        # kafka-python's transaction timeout (60 s); librdkafka wants deliveries to give up within it
        conf["transaction.timeout.ms"] = 60_000
        conf["message.timeout.ms"] = 60_000
    with errors():
        native = NativeProducer(conf)
    bootstrap(native, cfg)
    if transactional_id is not None:
        with errors():
            native.init_transactions(TIMEOUT_S)  # fences an older producer with this id, aborts what it left open
            native.begin_transaction()
    return ConfluentProducer(native)


def _admin(cfg: KafkaSection) -> Any:
    return AdminClient(client_options(cfg))


def topic_partitions(cfg: KafkaSection, topics: list[str]) -> dict[str, int]:
    with errors():
        listed = _admin(cfg).list_topics(timeout=TIMEOUT_S).topics  # all topics: naming one could auto-create it
    return {t: len(listed[t].partitions) for t in topics if t in listed and listed[t].partitions}


def ensure_topic(cfg: KafkaSection, name: str, partitions: int) -> None:
    admin = _admin(cfg)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions)], operation_timeout=TIMEOUT_S)[name].result()
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise client_error(exc) from exc
    deadline = time.monotonic() + TIMEOUT_S
    while name not in topic_partitions(cfg, [name]):  # as kafka-python's wait_for_metadata
        if time.monotonic() > deadline:
            raise ClientError(f"topic {name} created but not in the metadata after {TIMEOUT_S:.0f} s", retriable=True)
        time.sleep(0.1)
