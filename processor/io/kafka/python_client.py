"""The kafka-python implementation of ``processor.io.kafka.client`` (the default client: pure Python).

kafka-python's ``TopicPartition`` and ``ConsumerRecord`` are named tuples with the fields of ``TP`` and ``Msg``, so
batches pass through unconverted. Its rebalance listener may run on the client's heartbeat thread, where only an
asynchronous commit is safe (``callbacks_in_poll = False``); the newly assigned partitions are therefore
positioned after ``poll()`` returns, in the caller's thread, and the batch that poll fetched from the old
positions is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]
from kafka.consumer.subscription_state import ConsumerRebalanceListener  # type: ignore[import-untyped]
from kafka.coordinator.assignors.range import RangePartitionAssignor  # type: ignore[import-untyped]
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, UnknownError  # type: ignore[import-untyped]
from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

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
from processor.io.kafka.settings import KafkaSection

NAME = "kafka-python"


def client_options(cfg: KafkaSection) -> dict[str, Any]:
    """The settings every client shares: where the brokers are and how to authenticate (SASL/SSL)."""
    opts: dict[str, Any] = {
        "bootstrap_servers": list(cfg.bootstrap_servers),
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
        # kafka-python waits 30 s by default before saying the brokers are unreachable; say it sooner, then retry
        "bootstrap_timeout_ms": 5000,
    }
    if cfg.sasl_mechanism:
        opts["sasl_mechanism"] = cfg.sasl_mechanism
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = cfg.sasl_password.reveal()
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(cfg, key):
            opts[key] = getattr(cfg, key)
    return opts


def _describe(exc: BaseException) -> str:
    """``Type: message`` once (kafka-python's errors already start their text with their type's name)."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except KafkaError as exc:
        raise ClientError(_describe(exc), retriable=bool(getattr(exc, "retriable", False))) from exc


@contextmanager
def _building() -> Iterator[None]:
    """Inside ``_errors()``: no broker answering while a client is built is ``Unreachable`` (retried)."""
    try:
        yield
    except (KafkaConnectionError, KafkaTimeoutError) as exc:  # NoBrokersAvailable is a KafkaConnectionError
        raise Unreachable(_describe(exc)) from exc


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, revoked: Callable[[Any], None], assigned: Callable[[Any], None]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned(assigned)


class PythonConsumer:
    callbacks_in_poll = False

    def __init__(self, native: Any, auto_offset_reset: str) -> None:
        self.native = native
        self._reset = auto_offset_reset
        self._on_assign: AssignCallback | None = None
        self._on_revoke: RevokeCallback | None = None
        self._assigned: list[Any] | None = None

    def subscribe(self, topics: list[str], on_assign: AssignCallback, on_revoke: RevokeCallback) -> None:
        self._on_assign, self._on_revoke = on_assign, on_revoke
        with _errors():
            self.native.subscribe(topics=topics, listener=_Listener(self._revoked, self._set_assigned))

    def _revoked(self, revoked: Any) -> None:
        assert self._on_revoke is not None
        self._on_revoke([TP(tp.topic, tp.partition) for tp in revoked])

    def _set_assigned(self, assigned: Any) -> None:
        self._assigned = list(assigned)  # positioned by poll(), in the caller's thread

    def poll(self, timeout_s: float) -> Mapping[TP, list[Msg]]:
        with _errors():
            batch = self.native.poll(timeout_ms=int(timeout_s * 1000))
            if self._assigned is not None:
                # a rebalance happened inside poll(): this batch was fetched from the old positions
                assigned, self._assigned = self._assigned, None
                starts = self._position(assigned)
                assert self._on_assign is not None
                self._on_assign(starts)
                return {}
        return cast(Mapping[TP, list[Msg]], batch)  # TopicPartition and ConsumerRecord are TP- and Msg-shaped

    def _position(self, tps: list[Any]) -> dict[TP, int | None]:
        starts: dict[TP, int | None] = {}
        for tp in tps:
            committed = self.native.committed(tp)
            if committed is not None:
                self.native.seek(tp, committed)
                starts[TP(tp.topic, tp.partition)] = committed
            else:
                if self._reset == "earliest":
                    self.native.seek_to_beginning(tp)
                else:
                    self.native.seek_to_end(tp)
                starts[TP(tp.topic, tp.partition)] = self.native.position(tp)
        return starts

    def assignment(self) -> list[TP]:
        return [TP(tp.topic, tp.partition) for tp in self.native.assignment()]

    def rewind(self) -> dict[TP, int | None]:
        with _errors():
            return self._position(list(self.native.assignment()))

    def commit(self, offsets: Mapping[TP, int], *, blocking: bool) -> None:
        native = {TopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
        with _errors():
            if blocking:
                self.native.commit(native)
            else:
                self.native.commit_async(native)

    def highwater(self, tp: TP) -> int | None:
        return cast("int | None", self.native.highwater(TopicPartition(*tp)))

    def position(self, tp: TP) -> int | None:
        try:  # (known once assigned and positioned: no request)
            return cast("int | None", self.native.position(TopicPartition(*tp)))
        except Exception:  # noqa: BLE001 - not assigned any more, or being reset: unknown
            return None

    def close(self) -> None:
        with _errors():
            self.native.close(autocommit=False)


class PythonProducer:
    def __init__(self, native: Any) -> None:
        self.native = native

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None,
        on_error: Callable[[BaseException], None],
    ) -> None:
        try:
            self.native.send(topic, value=value, key=key, headers=headers).add_errback(on_error)
        except KafkaError as exc:  # metadata or buffer wait timed out (broker lost for max_block_ms)
            on_error(exc)

    def flush(self) -> None:
        # kafka-python 3.0 splits a batch the broker refused as too large and re-enqueues the halves; its flush()
        # then wakes on the old batch and raises UnknownError('Future not done') although the halves are still
        # in flight. Flushing again waits for them (each split halves a batch: a few rounds at most).
        with _errors():
            for _ in range(64):
                try:
                    self.native.flush()
                    return
                except UnknownError as exc:
                    if "Future not done" not in str(exc):
                        raise
        raise ClientError("kafka-python: flush did not complete after 64 batch splits")

    def close(self, timeout_s: float) -> None:
        with _errors():
            self.native.close(timeout=timeout_s)

    def begin_transaction(self) -> None:
        with _errors():
            self.native.begin_transaction()

    def commit_transaction(self) -> None:
        with _errors():
            self.native.commit_transaction()

    def abort_transaction(self) -> None:
        with _errors():
            self.native.abort_transaction()

    def send_offsets_to_transaction(self, offsets: Mapping[TP, int], consumer: Consumer) -> None:
        assert isinstance(consumer, PythonConsumer)
        native = {TopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()}
        with _errors():
            self.native.send_offsets_to_transaction(native, consumer.native.group_metadata())


def make_consumer(cfg: KafkaSection, *, read_committed: bool = False) -> PythonConsumer:
    with _errors(), _building():
        native = KafkaConsumer(
            **client_options(cfg),
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            group_id=cfg.group_id,
            enable_auto_commit=False,  # offsets are committed by CommitPlanner's rule only
            auto_offset_reset=cfg.auto_offset_reset,
            # range assignment gives one member partition N of every input topic: co-partitioned inputs stay joinable
            partition_assignment_strategy=[RangePartitionAssignor],
            session_timeout_ms=int(cfg.session_timeout_s * 1000),
            max_poll_records=2000,
        )
    return PythonConsumer(native, cfg.auto_offset_reset)


def make_producer(cfg: KafkaSection, transactional_id: str | None = None) -> PythonProducer:
    with _errors(), _building():
        native = KafkaProducer(
            **client_options(cfg),
            transactional_id=transactional_id,
            acks="all",
            enable_idempotence=True,  # broker-side dedup of the producer's own retries
            linger_ms=5,
            batch_size=256 * 1024,  # with the events topic on, small batches make kafka-python wake its sender per send
            # keyed records: murmur2(key) % partitions, kafka-python's default (the Java client's partitioner)
        )
        if transactional_id is not None:
            native.init_transactions()  # fences an older producer with this id, aborts what it left open
            native.begin_transaction()
    return PythonProducer(native)


def topic_partitions(cfg: KafkaSection, topics: list[str]) -> dict[str, int]:
    """Asked through a throwaway client: the group consumer asking for all topics' metadata before it subscribes
    sees its metadata change right after its first join, and rejoins (a second rebalance at every start)."""
    with _errors():
        probe = KafkaConsumer(**client_options(cfg))
        try:
            out: dict[str, int] = {}
            for topic in topics:
                parts = probe.partitions_for_topic(topic)
                if parts:
                    out[topic] = len(parts)
            return out
        finally:
            probe.close()


def ensure_topic(cfg: KafkaSection, name: str, partitions: int) -> None:
    with _errors(), KafkaAdminClient(**client_options(cfg)) as admin:
        try:
            admin.create_topics({name: {"num_partitions": partitions}}, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass
