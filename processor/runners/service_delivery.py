"""How the service's outputs reach Kafka and its input offsets get committed: at least once, or exactly once.

``AtLeastOnce`` sends each output at once and, at each commit, flushes the producer and commits per partition what
``CommitPlanner`` says is below every held record: a crash replays records whose outputs were sent (the same
``event.id`` again), never loses one. ``ExactlyOnce`` holds each output in an ``Outbox`` until every record it
came from is below the commit point, then sends those outputs and the offsets in one transaction.

A failed delivery is reported to the caller (``commit`` returns the reason); the service then rebuilds its
pipeline and rewinds every partition to its committed offset (``Service._recover``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from processor.io.kafka.client import TP, Backend, ClientError, Consumer, Producer
from processor.io.kafka.inputs import CommitPlanner, Outbox, with_backoff
from processor.io.kafka.settings import KafkaSection
from processor.io.metrics import Metrics

Headers = list[tuple[str, bytes]]
Coords = list[tuple[str, int]]


class AtLeastOnce:
    """Outputs sent as they come; offsets committed once every output before them is acknowledged."""

    exactly_once = False

    def __init__(
        self,
        client: Backend,
        kafka: KafkaSection,
        planner: CommitPlanner,
        metrics: Metrics,
        log: Any,
        transactional_id: str | None = None,
    ) -> None:
        self.client, self.kafka, self.planner, self.metrics, self.log = client, kafka, planner, metrics, log
        self.transactional_id = transactional_id
        self.producer: Producer | None = None
        self.send_error: BaseException | None = None

    def start(self, stopping: Callable[[], bool]) -> bool:
        """Build the producer (retrying while no broker answers); False when asked to stop first."""
        self.producer = with_backoff(
            lambda: self.client.make_producer(self.kafka, self.transactional_id),
            "producer",
            self.log,
            max_s=self.kafka.connect_backoff_max_s,
            stopping=stopping,
        )
        return self.producer is not None

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None = None,
        *,
        coords: Coords | None = None,
    ) -> None:
        assert self.producer is not None
        self.producer.send(topic, value, key, headers or None, self._failed)

    def _failed(self, exc: BaseException) -> None:
        self.send_error = exc  # checked after flush: nothing is committed past a lost output

    def commit(self, consumer: Consumer, held: Mapping[str, int], *, in_rebalance: bool = False) -> str | None:
        """Flush the producer, then commit per partition what is below every held record. Returns why the
        delivery failed (the caller recovers), or None.

        ``in_rebalance``: called from the revoke callback. Where the client runs it on another thread than
        ``poll()`` (kafka-python's heartbeat thread) only the asynchronous commit is safe; the broker handles it
        before this member's JoinGroup request (same connection, in order), so the next owner of a partition
        reads this commit. A failure there is not recovered from: the pipeline is rebuilt anyway.
        """
        assert self.producer is not None
        self.producer.flush()
        if self.send_error is not None:
            # in a rebalance the pipeline is rebuilt anyway: nothing is committed past the lost output
            return None if in_rebalance else f"output not delivered: {self.send_error}"
        offsets = self.planner.plan(held)
        if not offsets:
            return None
        try:
            consumer.commit(offsets, blocking=not in_rebalance or consumer.callbacks_in_poll)
        except ClientError as exc:
            self.log.warning("kafka.commit_failed", error=str(exc))
            return None
        self._committed(offsets)
        return None

    def _committed(self, offsets: Mapping[TP, int]) -> None:
        self.planner.mark_committed(offsets)
        self.metrics.committed()

    def restart(self) -> None:
        """After a failed delivery: a new producer (what the old one held is replayed from the committed offsets)."""
        self.send_error = None
        assert self.producer is not None
        self.producer.close(0)
        self.start(lambda: False)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(10)


class ExactlyOnce(AtLeastOnce):
    """Outputs and offsets committed in one Kafka transaction; an output waits in the outbox until every record
    it came from is below the commit point (sent any earlier, a crash would replay its records after the
    transaction committed and emit it again)."""

    exactly_once = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # AtLeastOnce's arguments
        super().__init__(*args, **kwargs)
        self.outbox = Outbox()

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None = None,
        *,
        coords: Coords | None = None,
    ) -> None:
        self.outbox.add((topic, value, key, headers or None, coords or []))

    def commit(self, consumer: Consumer, held: Mapping[str, int], *, in_rebalance: bool = False) -> str | None:
        """Release the outputs whose records are all below the new offsets, commit both at once. In a rebalance
        the open transaction is dropped instead: the next owner replays its records."""
        if in_rebalance:
            self.abort()
            return None
        assert self.producer is not None
        offsets = self.planner.plan(held)
        try:
            for topic, value, key, headers, _ in self.outbox.release(self.planner.safe):
                self.producer.send(topic, value, key, headers, self._failed)
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, consumer)
            self.producer.commit_transaction()
            self.producer.begin_transaction()
        except ClientError as exc:
            return f"transaction not committed: {exc}"
        if self.send_error is not None:  # a send refused before the commit: the transaction did not hold it
            return f"output not delivered: {self.send_error}"
        self._committed(offsets)
        return None

    def abort(self) -> None:
        """Drop what the open transaction holds; its records are read again."""
        self.outbox.clear()
        assert self.producer is not None
        try:
            self.producer.abort_transaction()
            self.producer.begin_transaction()
        except ClientError as exc:
            self.send_error = exc  # the main loop's next commit replaces the producer

    def restart(self) -> None:
        self.outbox.clear()
        super().restart()

    def close(self) -> None:
        if self.producer is not None:
            self.outbox.clear()
            try:
                self.producer.abort_transaction()  # the empty one begun after the last commit
            except ClientError:
                pass
        super().close()


Delivery = AtLeastOnce  # the interface both share (ExactlyOnce is one)
