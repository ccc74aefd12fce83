"""The Kafka edge of ``badgateway run``: clients, start-up checks, and which offsets are safe to commit.

Commit rule (the whole delivery guarantee rests on it): a partition's offset is committed only after
``producer.flush()`` returned, and only below every record the pipeline still holds (an open multi-line entry,
a join window, evidence kept for later incidents). One more condition keeps replays exact: when any record an
emitted incident was built from lies at or above the commit point, every other record of that incident must
too — otherwise a restart would replay the error line without its access line and emit a different incident.
``CommitPlanner`` computes that fixpoint.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]
from kafka.consumer.fetcher import ConsumerRecord  # type: ignore[import-untyped]
from kafka.consumer.subscription_state import ConsumerRebalanceListener  # type: ignore[import-untyped]
from kafka.coordinator.assignors.range import RangePartitionAssignor  # type: ignore[import-untyped]
from kafka.errors import KafkaConnectionError, KafkaTimeoutError  # type: ignore[import-untyped]

from processor.config import InputSection, KafkaSection
from processor.errors import UserConfigError
from processor.io.envelopes import Envelope

T = TypeVar("T")
JOINED_TYPES = ("auto", "nginx_access", "nginx_error", "php_fpm")
_SOURCE = re.compile(r"^(?P<stream>.*\[\d+\])@(?P<offset>\d+)$")


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


def make_consumer(cfg: KafkaSection, *, read_committed: bool = False) -> KafkaConsumer:
    return KafkaConsumer(
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


def make_producer(cfg: KafkaSection, transactional_id: str | None = None) -> KafkaProducer:
    producer = KafkaProducer(
        **client_options(cfg),
        transactional_id=transactional_id,
        acks="all",
        enable_idempotence=True,  # broker-side dedup of the producer's own retries
        linger_ms=5,
        batch_size=256 * 1024,  # with the events topic on, small batches make kafka-python wake its sender per send
    )
    if transactional_id is not None:
        producer.init_transactions()  # fences an older producer with this id, aborts what it left open
        producer.begin_transaction()
    return producer


def with_backoff(make: Callable[[], T], what: str, log: Any, *, max_s: float,
                 stopping: Callable[[], bool]) -> T | None:
    """Build a client, retrying 0.5 s → ``max_s`` (doubling) while no broker answers; None if asked to stop."""
    delay = 0.5
    while True:
        try:
            return make()
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            log.warning("kafka.unreachable", client=what, error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if stopping():
                return None
            time.sleep(0.1)
        delay = min(delay * 2, max_s)


def ensure_topic(cfg: KafkaSection, name: str, partitions: int) -> None:
    """Create the internal repartition topic if it is not there (replication: the broker's default)."""
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    with KafkaAdminClient(**client_options(cfg)) as admin:
        try:
            admin.create_topics({name: {"num_partitions": partitions}}, wait_for_metadata=True)
        except TopicAlreadyExistsError:
            pass


def check_copartitioned(partitions: Mapping[str, int], inputs: Iterable[InputSection]) -> None:
    """The join needs partition N of every joined topic in the same member: same partition counts."""
    joined = {i.topic: partitions[i.topic] for i in inputs if i.type in JOINED_TYPES and i.topic in partitions}
    if len(set(joined.values())) > 1:
        listing = ", ".join(f"{t} has {n}" for t, n in sorted(joined.items()))
        raise UserConfigError(
            f"inputs are not co-partitioned ({listing}): the join needs every input topic with the same number "
            "of partitions, keyed by host with the same partitioner. Fix: recreate the topics with one partition "
            "count (kafka-topics.sh --alter --partitions N on the smaller ones), and have every shipper use the "
            "host as the record key.")


def topic_partitions(cfg: KafkaSection, topics: Iterable[str]) -> dict[str, int]:
    """Partition count per topic that exists (missing topics are left out).

    Asked through a throwaway client: the group consumer asking for all topics' metadata before it subscribes
    sees its metadata change right after its first join, and rejoins (a second rebalance at every start).
    """
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


class InputReader:
    """One input topic: its envelope, where its host comes from, its log type and access format."""

    def __init__(self, cfg: InputSection, max_record_bytes: int, default_format: str | None = None) -> None:
        self.type = cfg.type
        self.log_type = None if cfg.type == "auto" else cfg.type
        self.access_format = cfg.format or (default_format if cfg.type in ("auto", "nginx_access") else None)
        self.envelope = Envelope(cfg.envelope, cfg.message_field, cfg.host_field, max_record_bytes)
        self._mode, _, self._name = cfg.host_from.partition(":")

    def host(self, from_envelope: str | None, rec: ConsumerRecord) -> str | None:
        mode = self._mode
        if mode == "fixed":
            return self._name
        if mode == "header":
            for key, value in rec.headers or ():
                if key == self._name and value is not None:
                    return str(value.decode("utf-8", "surrogateescape"))
            return None
        if from_envelope is not None and mode != "key":
            return from_envelope
        if mode != "envelope" and rec.key:
            return str(rec.key.decode("utf-8", "surrogateescape"))
        return None


class RebalanceHook(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python calls these from inside ``poll()``; the service does the work."""

    def __init__(self, revoked: Callable[[list[TopicPartition]], None],
                 assigned: Callable[[list[TopicPartition]], None]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned(list(assigned))


def stream_of(tp: TopicPartition) -> str:
    """The pipeline's name for a partition (``SourceRef.stream``)."""
    return f"{tp.topic}[{tp.partition}]"


def incident_sources(incident: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(stream, offset) of every Kafka record the incident's evidence names (``topic[p]@offset``)."""
    found: list[tuple[str, int]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "source" and isinstance(value, str):
                    m = _SOURCE.match(value)
                    if m is not None:
                        found.append((m["stream"], int(m["offset"])))
                elif key != "fields":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(incident.get("evidence"))
    return found


class CommitPlanner:
    """Per partition: the next offset to process, what is committed, and the incidents still replayable."""

    def __init__(self) -> None:
        self.next: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self._by_stream: dict[str, TopicPartition] = {}
        self._incidents: list[list[tuple[str, int]]] = []
        self.safe: dict[str, int] = {}  # per stream, the commit point of the last plan (incl. unmoved ones)

    def processed(self, tp: TopicPartition, next_offset: int) -> None:
        if tp not in self.next:
            self._by_stream[stream_of(tp)] = tp
        self.next[tp] = next_offset

    def alias(self, stream: str, tp: TopicPartition) -> None:
        """Another stream name whose records live in ``tp`` (repartition: one sub-stream per original topic)."""
        self._by_stream[stream] = tp

    def incident(self, incident: Mapping[str, Any]) -> None:
        sources = incident_sources(incident)
        if len(sources) > 1:  # a one-record incident replays whole or not at all
            self._incidents.append(sources)

    def plan(self, held: Mapping[str, int]) -> dict[TopicPartition, int]:
        """Offsets to commit now (only those that moved forward). Call after ``producer.flush()``."""
        safe = dict(self.next)
        for stream, tp in self._by_stream.items():
            if stream in held and tp in safe and held[stream] < safe[tp]:
                safe[tp] = held[stream]
        changed = True
        while changed:
            changed = False
            for sources in self._incidents:
                if not any(off >= safe.get(self._by_stream.get(s), -1) for s, off in sources
                           if self._by_stream.get(s) is not None):
                    continue
                for stream, off in sources:
                    tp = self._by_stream.get(stream)
                    if tp is not None and off < safe[tp]:
                        safe[tp] = off
                        changed = True
        self._incidents = [src for src in self._incidents
                           if any(self._by_stream.get(s) is not None and off >= safe[self._by_stream[s]]
                                  for s, off in src)]
        self.safe = {stream: safe[tp] for stream, tp in self._by_stream.items() if tp in safe}
        return {tp: off for tp, off in safe.items() if off > self.committed.get(tp, -1)}

    def mark_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def forget(self) -> None:
        """The pipeline was rebuilt: start over from the committed offsets."""
        self.next.clear()
        self.committed.clear()
        self._by_stream.clear()
        self._incidents.clear()
        self.safe.clear()


Pending = tuple[str, bytes, "bytes | None", "list[tuple[str, bytes]] | None", "list[tuple[str, int]]"]


class Outbox:
    """exactly_once: an output waits here until every record it came from is below the commit point.

    Sent any earlier, a crash would replay its records after the transaction committed and emit it again.
    """

    def __init__(self) -> None:
        self._items: list[Pending] = []

    def add(self, item: Pending) -> None:
        self._items.append(item)

    def release(self, safe: Mapping[str, int]) -> list[Pending]:
        """The outputs whose records all lie below ``safe`` (per stream); the others stay."""
        out: list[Pending] = []
        keep: list[Pending] = []
        for item in self._items:
            ready = all(stream in safe and offset < safe[stream] for stream, offset in item[4])
            (out if ready else keep).append(item)
        self._items = keep
        return out

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
