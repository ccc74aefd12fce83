"""The Kafka edge of ``badgateway run``, whichever client: start-up checks, a record's host, safe offsets.

The clients themselves are behind ``processor.io.kafka.client``.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from processor.core.errors import UserConfigError
from processor.io.envelopes import Envelope
from processor.io.kafka.client import TP, Backend, ClientError, Msg, Unreachable
from processor.io.kafka.settings import InputSection, KafkaSection, OutputsSection

T = TypeVar("T")
JOINED_TYPES = ("auto", "nginx_access", "nginx_error", "php_fpm")
_SOURCE = re.compile(r"^(?P<stream>.*\[\d+\])@(?P<offset>\d+)$")


def with_backoff(make: Callable[[], T], what: str, log: Any, *, max_s: float, stopping: Callable[[], bool]) -> T | None:
    """Build a client, retrying 0.5 s → ``max_s`` (doubling) while no broker answers; None if asked to stop."""
    delay = 0.5
    while True:
        try:
            return make()
        except Unreachable as exc:
            log.warning("kafka.unreachable", client=what, error=str(exc), retry_in_s=delay)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if stopping():
                return None
            time.sleep(0.1)
        delay = min(delay * 2, max_s)


def check_output_topics(backend: Backend, kafka: KafkaSection, out: OutputsSection, partitions: int) -> list[str]:
    """The output topics the broker lacks, created (``outputs.missing_topics = "create"``, ``partitions`` each) or
    refused with ``UserConfigError``: a producer sending to a missing topic waits for its metadata (kafka-python
    blocked there, deaf to SIGTERM; confluent-kafka said nothing for 45 s). Returns the topics created."""
    wanted = [t for t in (out.incidents_topic, out.dead_letter_topic, out.events_topic, out.episodes_topic) if t]
    missing = [t for t in wanted if t not in backend.topic_partitions(kafka, wanted)]
    if missing and out.missing_topics == "refuse":
        raise UserConfigError(
            f"outputs: topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} not on the"
            ' broker; create them, or set outputs.missing_topics = "create"'
        )
    for topic in missing:
        backend.ensure_topic(kafka, topic, partitions)
    return missing


def wait_for_topics(
    backend: Backend,
    kafka: KafkaSection,
    inputs: Sequence[InputSection],
    outputs: OutputsSection,
    internal: str | None,
    log: Any,
    *,
    stopping: Callable[[], bool],
    sleep: Callable[[float], None],
) -> bool:
    """Until every input topic exists (retrying, with a warning, while one is missing): then the inputs are
    checked co-partitioned (or the ``internal`` repartition topic is created) and the output topics created or
    refused. False when asked to stop first."""
    names = [i.topic for i in inputs]
    delay = 0.5
    while not stopping():
        try:
            counts = backend.topic_partitions(kafka, names)
        except ClientError as exc:  # the broker went away between bootstrap and here
            counts = {}
            log.warning("kafka.unavailable", error=str(exc), retry_in_s=delay)
        missing = sorted(set(names) - set(counts))
        if not missing:
            if internal is None:
                check_copartitioned(counts, inputs)
            else:
                backend.ensure_topic(kafka, internal, max(counts.values()))
            created = check_output_topics(backend, kafka, outputs, max(counts.values()))
            if created:
                log.info("kafka.topics_created", topics=created)
            return True
        log.warning("kafka.topics_missing", topics=missing, retry_in_s=delay)
        sleep(delay)
        delay = min(delay * 2, kafka.connect_backoff_max_s)
    return False


def check_copartitioned(partitions: Mapping[str, int], inputs: Iterable[InputSection]) -> None:
    """The join needs partition N of every joined topic in the same member: same partition counts."""
    joined = {i.topic: partitions[i.topic] for i in inputs if i.type in JOINED_TYPES and i.topic in partitions}
    if len(set(joined.values())) > 1:
        listing = ", ".join(f"{t} has {n}" for t, n in sorted(joined.items()))
        raise UserConfigError(
            f"inputs are not co-partitioned ({listing}): the join needs every input topic with the same number "
            "of partitions, keyed by host with the same partitioner. Fix: recreate the topics with one partition "
            "count (kafka-topics.sh --alter --partitions N on the smaller ones), and have every shipper use the "
            "host as the record key."
        )


class InputReader:
    """One input topic: its envelope, where its host comes from, its log type and access format."""

    def __init__(self, cfg: InputSection, max_record_bytes: int, default_format: str | None = None) -> None:
        self.type = cfg.type
        self.log_type = None if cfg.type == "auto" else cfg.type
        self.access_format = cfg.format or (default_format if cfg.type in ("auto", "nginx_access") else None)
        self.envelope = Envelope(cfg.envelope, cfg.message_field, cfg.host_field, max_record_bytes)
        self._mode, _, self._name = cfg.host_from.partition(":")

    def hosts(self, records: Sequence[Msg]) -> str | None | list[str | None]:
        """``host(None, rec)`` of each record (raw lines: no envelope host); one value when it is fixed."""
        if self._mode == "fixed":
            return self._name
        host = self.host
        return [host(None, rec) for rec in records]

    def host(self, from_envelope: str | None, rec: Msg) -> str | None:
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


def partition_stream(tp: TP) -> str:
    """The pipeline's name for a partition (``SourceRef.stream``)."""
    return f"{tp.topic}[{tp.partition}]"


def incident_sources(incident: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(stream, offset) of every Kafka record the incident's evidence names (``topic[p]@offset``): each evidence
    entry (``build_incident``: one line, or a list of them) has its ``source``."""
    found: list[tuple[str, int]] = []
    for entry in (incident.get("evidence") or {}).values():
        for item in entry if isinstance(entry, list) else (entry,):
            source = item.get("source") if isinstance(item, dict) else None
            if isinstance(source, str) and (m := _SOURCE.match(source)) is not None:
                found.append((m["stream"], int(m["offset"])))
    return found


class CommitPlanner:
    """Per partition: the next offset to process, what is committed, and the incidents still replayable."""

    def __init__(self) -> None:
        self.next: dict[TP, int] = {}
        self.committed: dict[TP, int] = {}
        self._by_stream: dict[str, TP] = {}
        # per incident: its records' (partition, offset), and its sources while one names a stream not known yet
        self._incidents: list[tuple[list[tuple[TP, int]], list[tuple[str, int]] | None]] = []
        self.safe: dict[str, int] = {}  # per stream, the commit point of the last plan (incl. unmoved ones)

    def processed(self, tp: TP, next_offset: int) -> None:
        if tp not in self.next:
            self._by_stream[partition_stream(tp)] = tp
        self.next[tp] = next_offset

    def alias(self, stream: str, tp: TP) -> None:
        """Another stream name whose records live in ``tp`` (repartition: one sub-stream per original topic)."""
        self._by_stream[stream] = tp

    def incident(self, incident: Mapping[str, Any]) -> None:
        sources = incident_sources(incident)
        if len(sources) > 1:  # a one-record incident replays whole or not at all
            self.add_sources(sources)

    def add_sources(self, sources: list[tuple[str, int]]) -> None:
        """An incident's records, (stream, offset) each."""
        by_stream = self._by_stream
        here = [(where, off) for s, off in sources if (where := by_stream.get(s)) is not None]
        self._incidents.append((here, None if len(here) == len(sources) else sources))

    def plan(self, held: Mapping[str, int]) -> dict[TP, int]:
        """Offsets to commit now (only those that moved forward). Call after ``producer.flush()``.

        The fixpoint: an incident with a record at or above its partition's commit point pulls the point of every
        partition it has a record on down to that record. One pass sorts the incidents: every record at or above
        the points (it stays, and can lower nothing), some above and some below (it pulls), or every record below
        (it stays only if a point drops to one of its records: those are looked at once each, per partition in
        descending offset order, and only when some point dropped). Passes over every incident until nothing moved
        took seconds per commit at 100 % failures, where a lagging input holds the points and every incident stays.
        """
        safe = dict(self.next)
        by_stream = self._by_stream
        for stream, tp in by_stream.items():
            if stream in held and tp in safe and held[stream] < safe[tp]:
                safe[tp] = held[stream]
        get = safe.get
        incidents = self._incidents
        located: list[list[tuple[TP, int]]] = []
        pulled = [False] * len(incidents)
        below: list[int] = []  # incidents with every record below the points (so far)
        work: list[TP] = []  # partitions whose point dropped
        for i, (here, raw) in enumerate(incidents):
            if raw is not None:  # a stream not known when it came: look again
                here = [(where, off) for s, off in raw if (where := by_stream.get(s)) is not None]
                incidents[i] = (here, None if len(here) == len(raw) else raw)
            located.append(here)
            low = high = False
            for where, off in here:
                if off < get(where, -1):
                    low = True
                else:
                    high = True
            if not high:
                if low:
                    below.append(i)
                continue
            pulled[i] = True
            if low:
                for where, off in here:
                    if where in safe and off < safe[where]:
                        safe[where] = off
                        work.append(where)
        if work and below:
            # per partition, its records' offset * n + incident, ascending: ints, not tuples (no allocation the
            # cyclic collector counts: at 100 % failures a collection walks the join's whole state)
            n = len(incidents)
            records: dict[TP, list[int]] = {}
            for i in below:
                for where, off in located[i]:
                    records.setdefault(where, []).append(off * n + i)
            for entries in records.values():
                entries.sort()
            while work:
                tp = work.pop()
                entries = records.get(tp, [])
                while entries and entries[-1] // n >= get(tp, -1):
                    i = entries.pop() % n
                    if pulled[i]:
                        continue
                    pulled[i] = True
                    for where, off in located[i]:
                        if where in safe and off < safe[where]:
                            safe[where] = off
                            work.append(where)
        self._incidents = [entry for entry, keep in zip(incidents, pulled) if keep]
        self.safe = {stream: safe[tp] for stream, tp in by_stream.items() if tp in safe}
        return {tp: off for tp, off in safe.items() if off > self.committed.get(tp, -1)}

    def mark_committed(self, offsets: Mapping[TP, int]) -> None:
        self.committed.update(offsets)

    def forget(self) -> None:
        """The pipeline was rebuilt: start over from the committed offsets."""
        self.next.clear()
        self.committed.clear()
        self._by_stream.clear()
        self._incidents.clear()
        self.safe.clear()


OutboxItem = tuple[str, bytes, "bytes | None", "list[tuple[str, bytes]] | None", "list[tuple[str, int]]"]


class Outbox:
    """exactly_once: an output waits here until every record it came from is below the commit point.

    Sent any earlier, a crash would replay its records after the transaction committed and emit it again.
    """

    def __init__(self) -> None:
        self._items: list[OutboxItem] = []

    def add(self, item: OutboxItem) -> None:
        self._items.append(item)

    def release(self, safe: Mapping[str, int]) -> list[OutboxItem]:
        """The outputs whose records all lie below ``safe`` (per stream); the others stay."""
        out: list[OutboxItem] = []
        keep: list[OutboxItem] = []
        for item in self._items:
            ready = all(stream in safe and offset < safe[stream] for stream, offset in item[4])
            (out if ready else keep).append(item)
        self._items = keep
        return out

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
