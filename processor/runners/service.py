"""``badgateway run``: the Kafka service — a consumer group in, incidents (events, dead letters) out.

One loop: poll → unwrap each record's envelope → ``Pipeline.feed`` → produce the outputs; every 250 ms a
processing-time tick; every ``commit_interval_s`` flush the producer and commit what ``CommitPlanner`` says is
safe. On a rebalance or a failed delivery the pipeline is rebuilt and every partition re-read from its committed
offset: nothing held in a window is lost, and a replayed record gives the same incident with the same ``event.id``.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from processor.runners.service_config import ServiceConfig, load_config, redacted
from processor.configs.knowledge import load_knowledge
from processor.core.errors import KafkaError, UserConfigError
from processor.core.events import DeadLetter, Record, SourceRef
from processor.io.kafka.inputs import CommitPlanner, InputReader, Outbox, check_copartitioned, check_output_topics, \
    incident_sources, stream_of, with_backoff
from processor.io.kafka.client import TP, ClientError, Consumer, Msg, Producer, backend
from processor.io.metrics import Metrics
from processor.io.sinks import serialise
from processor.diagnosis.episodes import EpisodeSettings
from processor.diagnosis.join import JoinSettings
from processor.io.log import configure, get_logger
from processor.core.parse import ParseSettings
from processor.pipeline import Output, Pipeline, PipelineSettings

TICK_S = 0.25
EXIT_STOP_TIMEOUT = 1  # the stop deadline passed (or a second signal came)


@dataclass
class Totals:
    """What the service counted over its life (the pipeline's own counters restart on a rebuild)."""

    records_in: int = 0
    envelope_dead_letters: int = 0
    lines_parsed: int = 0
    lines_dead_lettered: int = 0
    replayed_after_rebuild: int = 0
    incidents: int = 0
    rebuilds: int = 0
    block_records: int = 0  # records read as one block of lines (Pipeline.feed_block), not one by one


class Service:
    """Owns the clients, the pipeline and the commit rule; ``run()`` until ``stop()`` (a signal)."""

    def __init__(self, config: ServiceConfig, log: Any = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.log = log if log is not None else get_logger()
        self.metrics = metrics if metrics is not None else Metrics()
        self._new_pipeline, forced_format = pipeline_factory(config)
        self.pipeline: Pipeline = self._new_pipeline()
        self.inputs = {i.topic: InputReader(i, config.delivery.max_record_bytes, forced_format)
                       for i in config.inputs}
        self.planner = CommitPlanner()
        self.totals = Totals()
        self.client = backend(config.kafka)
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self._stopping = False
        self._closed = False
        self._send_error: BaseException | None = None
        self._host_partition: dict[str, int] = {}  # first partition number each host was seen on
        self._warned_hosts: set[str] = set()
        self._proc_ms = int(time.time() * 1000)  # processing time; frozen while the broker stalls us
        self._eos = config.delivery.exactly_once
        self._outbox = Outbox()
        # stable across restarts of one member: the restarted process fences its killed predecessor and aborts the
        # transaction it left open at once (else read_committed readers wait for the transaction timeout)
        txid = config.kafka.transactional_id or f"badgateway-{config.kafka.group_id}-{socket.gethostname()}"
        self._txid = txid if self._eos else None
        # repartition: stage 1 re-keys every input record by host (one partitioner: murmur2, either client) into
        # this internal topic, stage 2 joins from it; the same consumer group runs both
        self._internal = f"{config.kafka.group_id}-repartition" if config.kafka.repartition else None

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish (signal-safe: only sets a flag)."""
        self._stopping = True

    # -- life cycle ---------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.config
        self.metrics.serve(cfg.metrics.host, cfg.metrics.port)  # a busy port: one line, before anything starts
        self.log.info("service.starting", config=redacted(cfg))
        self.producer = self._make_producer(lambda: self._stopping)
        if self.producer is None:
            return 0
        self.consumer = with_backoff(lambda: self.client.make_consumer(cfg.kafka, read_committed=self._eos),
                                     "consumer", self.log, max_s=cfg.kafka.connect_backoff_max_s,
                                     stopping=lambda: self._stopping)
        if self.consumer is None:
            self.producer.close(10)
            return 0
        if not self._wait_for_topics():
            self._close()
            return 0
        topics = list(self.inputs) + ([self._internal] if self._internal else [])
        # Everything built so far (grammars, configs, clients) lives as long as the process: out of the cyclic
        # collector's sight, a full collection scans only the pipeline's state. Without this, a full collection
        # every few thousand records rescans the grammars, and consuming with confluent-kafka ran at 110k
        # records/s instead of 750k (bench_service.py). The youngest generation is collected every 10,000
        # allocations instead of 700: each 502/504 allocates dozens of objects (event, pending, incident) that
        # live until its window closes, and at 100% failures the collector took ~20% of the time
        # (bench_pipeline_hot.py --failure-share 1: 65 -> 52 µs per line).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, *gc.get_threshold()[1:])
        self.consumer.subscribe(topics, self._assigned, self._revoked)
        self.log.info("service.started", inputs=list(self.inputs), group=cfg.kafka.group_id, client=cfg.kafka.client)
        clean = False
        try:
            self._loop()
            clean = True
        finally:
            self._shutdown(flush=clean and cfg.delivery.on_stop == "flush")
        return 0

    def _make_producer(self, stopping: Callable[[], bool]) -> Producer | None:
        return with_backoff(lambda: self.client.make_producer(self.config.kafka, self._txid), "producer", self.log,
                            max_s=self.config.kafka.connect_backoff_max_s, stopping=stopping)

    def _wait_for_topics(self) -> bool:
        assert self.consumer is not None
        delay = 0.5
        while not self._stopping:
            try:
                counts = self.client.topic_partitions(self.config.kafka, list(self.inputs))
            except ClientError as exc:  # the broker went away between bootstrap and here
                counts = {}
                self.log.warning("kafka.unavailable", error=str(exc), retry_in_s=delay)
            missing = sorted(set(self.inputs) - set(counts))
            if not missing:
                if self._internal is None:
                    check_copartitioned(counts, self.config.inputs)
                else:
                    self.client.ensure_topic(self.config.kafka, self._internal, max(counts.values()))
                created = check_output_topics(self.client, self.config, max(counts.values()))
                if created:
                    self.log.info("kafka.topics_created", topics=created)
                return True
            self.log.warning("kafka.topics_missing", topics=missing, retry_in_s=delay)
            self._sleep(delay)
            delay = min(delay * 2, self.config.kafka.connect_backoff_max_s)
        return False

    def _loop(self) -> None:
        assert self.consumer is not None
        interval = self.config.delivery.commit_interval_s
        last_wall = last_tick = last_commit = last_progress = time.monotonic()
        lagging = False
        outage_s = 0.5
        while not self._stopping:
            try:
                polled_at = time.monotonic()
                # a rebalance runs the callbacks inside poll(): every record polled after it starts at the
                # committed offsets the rebuilt pipeline resumes from
                batch = self.consumer.poll(TICK_S)
                if not batch and time.monotonic() - polled_at < TICK_S / 4:
                    self._sleep(TICK_S / 4)  # a poll that returns at once with nothing (no assignment yet): no spin
            except ClientError as exc:
                if not exc.retriable:
                    raise
                # broker lost mid-stream: the client reconnects by itself; wait, then poll (or resume) again
                self.log.warning("kafka.unavailable", error=str(exc), retry_in_s=outage_s)
                self._sleep(outage_s)
                outage_s = min(outage_s * 2, self.config.kafka.connect_backoff_max_s)
                continue
            outage_s = 0.5
            got = 0
            for tp, records in batch.items():
                if records:
                    self._handle(tp, records)
                    got += len(records)
            now = time.monotonic()
            if got or not lagging:
                self._proc_ms += int((now - last_wall) * 1000)
            last_wall = now
            if now - last_tick >= TICK_S:
                last_tick = now
                lagging = self._lagging()
                self._report_positions()
                self._emit(self.pipeline.tick(self._proc_ms))
                self.metrics.sync(self.pipeline.counters, self.pipeline.join.state_size,
                                  self.pipeline.join.watermarks.current(), *self.pipeline.join.held_windows())
                if now - last_progress >= self.config.metrics.progress_interval_s:
                    last_progress = now
                    self._progress()
            if now - last_commit >= interval:
                last_commit = now
                self._commit()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(0.05)

    def _shutdown(self, *, flush: bool) -> None:
        """flush: emit every open window, then commit everything; else commit only what is safe (handoff)."""
        try:
            if flush:
                self._emit(self.pipeline.flush(), final=True)
            self._commit(everything=flush)
        except ClientError as exc:
            self.log.error("service.final_commit_failed", error=str(exc))
        finally:
            self._add_pipeline_totals(self.pipeline, final=flush)
            t = self.totals
            self.log.info("service.stopped", records_in=t.records_in, lines_parsed=t.lines_parsed,
                          lines_dead_lettered=t.lines_dead_lettered, envelope_dead_letters=t.envelope_dead_letters,
                          replayed_after_rebuild=t.replayed_after_rebuild, incidents=t.incidents,
                          rebuilds=t.rebuilds, block_records=t.block_records,
                          on_stop="flush" if flush else "handoff")
            self._close()

    def _close(self) -> None:
        self._closed = True  # the revoke callback that consumer.close() runs has nothing left to do
        if self.consumer is not None:
            try:
                self.consumer.close()
            except ClientError as exc:
                self.log.warning("kafka.close_failed", error=str(exc))
        if self.producer is not None:
            if self._eos:
                self._outbox.clear()
                try:
                    self.producer.abort_transaction()  # the empty one begun after the last commit
                except ClientError:
                    pass
            self.producer.close(10)

    # -- records in, outputs out ------------------------------------------------------------------------
    def _handle(self, tp: TP, records: list[Msg]) -> None:
        if self._internal is not None:
            if tp.topic == self._internal:
                self._handle_repartitioned(tp, records)
            else:
                self._repartition(tp, records)
            return
        reader = self.inputs[tp.topic]
        self._feed_blocks(tp, reader, records)
        self.totals.records_in += len(records)
        self.metrics.records_in.labels(tp.topic, reader.type).inc(len(records))
        self.planner.processed(tp, records[-1].offset + 1)

    def _feed_blocks(self, tp: TP, reader: InputReader, records: list[Msg]) -> None:
        """Plain raw access lines a poll at a time, as one block (``Pipeline.feed_block``); a batch with other
        records (an envelope, a tombstone, an oversized or multi-line value) in runs: each run of plain lines
        as a block, the others record by record."""
        envelope = reader.envelope
        if not self.pipeline.takes_blocks(reader.log_type, reader.access_format):
            self._feed_records(tp, reader, records)
            return
        block = envelope.block([rec.value for rec in records])
        if block is not None:
            self._feed_block(tp, reader, records, block)
            return
        for plain, run in groupby(records, key=lambda rec: envelope.block([rec.value]) is not None):
            part = list(run)
            block = envelope.block([rec.value for rec in part]) if plain and len(part) > 1 else None
            if block is None:
                self._feed_records(tp, reader, part)
            else:
                self._feed_block(tp, reader, part, block)

    def _feed_block(self, tp: TP, reader: InputReader, records: list[Msg], block: bytes) -> None:
        hosts = reader.hosts(records)
        for host in (hosts,) if hosts is None or isinstance(hosts, str) else set(hosts):
            self._check_partition(host, records[0])
        got = self.pipeline.feed_block(tp.topic, tp.partition, reader.log_type, reader.access_format, hosts,
                                       [rec.offset for rec in records], block.decode("utf-8", "surrogateescape"))
        if got is None:  # the pipeline declined after all: nothing was fed
            self._feed_records(tp, reader, records)
            return
        self.totals.block_records += len(records)
        for i, outputs in got:
            self._emit(outputs, records[i])

    def _feed_records(self, tp: TP, reader: InputReader, records: list[Msg]) -> None:
        raw_text = reader.envelope.raw_text
        host_of = reader.host
        check_partition = self._check_partition
        # runs of plain raw lines go to the pipeline together (Pipeline.feed_lines); anything an envelope must
        # decide (JSON, tombstone, oversized) goes alone, in its place
        lines: list[tuple[int, str, str | None]] = []
        run: list[Msg] = []
        for rec in records:
            text = raw_text(rec.value)
            if text is None:
                if lines:
                    self._feed_lines(tp, reader, lines, run)
                    lines, run = [], []
                self._handle_one(reader, rec)
                continue
            host = host_of(None, rec)
            check_partition(host, rec)
            lines.append((rec.offset, text, host))
            run.append(rec)
        if lines:
            self._feed_lines(tp, reader, lines, run)

    def _feed_lines(self, tp: TP, reader: InputReader, lines: list[tuple[int, str, str | None]], run: list[Msg]
                    ) -> None:
        for i, outputs in self.pipeline.feed_lines(tp.topic, tp.partition, reader.log_type, reader.access_format,
                                                   lines):
            self._emit(outputs, run[i])

    def _handle_one(self, reader: InputReader, rec: Msg) -> None:
        source = SourceRef(rec.topic, rec.offset, rec.partition)
        got = reader.envelope.unwrap(rec.value, source)
        if isinstance(got, DeadLetter):
            self.totals.envelope_dead_letters += 1
            self.metrics.dead_lettered.labels("envelope").inc()
            self._dead_letter(got, rec)
            return
        host = reader.host(got.host, rec)
        self._check_partition(host, rec)
        outputs = self.pipeline.feed(Record(got.text, source, reader.log_type, host, reader.access_format, 1,
                                            got.extra.get("log_file")))
        if outputs:
            self._emit(outputs, rec)

    def _repartition(self, tp: TP, records: list[Msg]) -> None:
        """Stage 1: unwrap, find the host, re-key by host into the internal topic (no parsing)."""
        assert self._internal is not None
        reader = self.inputs[tp.topic]
        topic = tp.topic.encode()
        for rec in records:
            source = SourceRef(rec.topic, rec.offset, rec.partition)
            got = reader.envelope.unwrap(rec.value, source)
            if isinstance(got, DeadLetter):
                self.totals.envelope_dead_letters += 1
                self.totals.records_in += 1
                self.metrics.dead_lettered.labels("envelope").inc()
                self._dead_letter(got, rec)
                continue
            host = reader.host(got.host, rec) or ""
            self._send(self._internal, got.text.encode("utf-8", "surrogateescape"), host.encode("utf-8",
                       "surrogateescape"), [("bgw-topic", topic), ("bgw-source", str(source).encode())],
                       coords=[(source.stream, source.offset)])
        self.planner.processed(tp, records[-1].offset + 1)

    def _handle_repartitioned(self, tp: TP, records: list[Msg]) -> None:
        """Stage 2: records already unwrapped and keyed by host; the original topic is in a header."""
        feed = self.pipeline.feed
        for rec in records:
            headers = dict(rec.headers or ())
            reader = self.inputs.get(headers.get("bgw-topic", b"").decode())
            if reader is None:
                continue  # not ours (another deployment's topic sharing the name): skipped, still committed
            host = rec.key.decode("utf-8", "surrogateescape") if rec.key else None
            text = (rec.value or b"").decode("utf-8", "surrogateescape")
            # one stream per original topic inside the partition: each keeps its own event-time order (and
            # watermark, and multi-line entries), however stage 1 interleaved them
            source = SourceRef(self._substream(tp, headers.get("bgw-topic", b"").decode()), rec.offset, rec.partition)
            outputs = feed(Record(text, source, reader.log_type, host, reader.access_format))
            if outputs:
                self._emit(outputs, rec)
            self.totals.records_in += 1
            self.metrics.records_in.labels(headers.get("bgw-topic", b"").decode(), reader.type).inc()
        self.planner.processed(tp, records[-1].offset + 1)

    def _substream(self, tp: TP, topic: str) -> str:
        name = f"{tp.topic}/{topic}"
        self.planner.alias(f"{name}[{tp.partition}]", tp)
        return name

    def _check_partition(self, host: str | None, rec: Msg) -> None:
        if host is not None and self._host_partition.setdefault(host, rec.partition) != rec.partition:
            self._not_copartitioned(host, rec)

    def _not_copartitioned(self, host: str, rec: Msg) -> None:
        """One host on two partition numbers: the shippers' partitioners differ (say it once per host)."""
        if host in self._warned_hosts:
            return
        self._warned_hosts.add(host)
        self.log.warning("inputs.not_copartitioned", host=host, partitions=[self._host_partition[host],
                         rec.partition], topic=rec.topic,
                         hint="the join needs one host's lines on the same partition number of every input topic: "
                              "give every shipper the host as key and the same partitioner (murmur2); with a "
                              "single member the incidents are still right")

    def _emit(self, outputs: list[Output], rec: Msg | None = None, *, final: bool = False) -> None:
        outs = self.config.outputs
        for out in self.pipeline.episode_outputs(outputs, final=final):
            if out.kind == "incident":
                host = (out.value.get("host") or {}).get("name") or ""
                self._send(outs.incidents_topic, serialise(out), host.encode("utf-8", "surrogateescape"),
                           coords=incident_sources(out.value) if self._eos else None)
                self.planner.incident(out.value)
                self.metrics.incident(out.value)
                self.totals.incidents += 1
            elif out.kind == "episode":
                self._send_episode(out)
            elif out.kind == "event":
                if outs.events_topic:
                    self._send(outs.events_topic, serialise(out), out.value.host.encode("utf-8", "surrogateescape"),
                               coords=[(out.value.source.stream, out.value.source.offset)])
            else:
                # the record being fed, or an entry completed later (then its headers are no longer at hand);
                # after a repartition the source is the sub-stream `<internal topic>/<original topic>`
                same = rec is not None and out.source is not None and out.source.offset == rec.offset \
                    and out.source.partition == rec.partition and out.source.name.split("/")[0] == rec.topic
                self._dead_letter(out.value, rec if same else None)

    def _send_episode(self, out: Output) -> None:
        """An episode record, keyed like incidents (host; none when fleet-wide). Exactly once: it waits in the
        outbox for the newest record behind its episode (its records are held while it is open: docs/service.md)."""
        topic = self.config.outputs.episodes_topic
        tracker = self.pipeline.episodes
        if not topic or tracker is None:
            return
        host = out.value["host"]["name"]
        self._send(topic, serialise(out), host.encode("utf-8", "surrogateescape") if host is not None else None,
                   coords=tracker.sources_of(out.value["episode"]["id"]) if self._eos else None)

    def _dead_letter(self, dl: DeadLetter, rec: Msg | None) -> None:
        doc = dl.to_dict()
        doc["source"] = {"topic": dl.source.name, "partition": dl.source.partition, "offset": dl.source.offset}
        doc["source_ref"] = str(dl.source)
        headers: list[tuple[str, bytes]] = []
        key = None
        if rec is not None:
            headers = list(rec.headers or ())
            key = rec.key
            doc["headers"] = {k: _text(v) for k, v in headers}
            doc["value"] = _text(rec.value)
        payload = fit_dead_letter(doc, self.config.delivery.max_dead_letter_bytes)
        self._send(self.config.outputs.dead_letter_topic, payload, key, headers,
                   coords=[(dl.source.stream, dl.source.offset)])

    def _send(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None = None,
              *, coords: list[tuple[str, int]] | None = None) -> None:
        assert self.producer is not None
        if self._eos:
            self._outbox.add((topic, value, key, headers or None, coords or []))
            return
        self.producer.send(topic, value, key, headers or None, self._failed)

    def _failed(self, exc: BaseException) -> None:
        self._send_error = exc  # checked after flush: nothing is committed past a lost output

    # -- delivery ---------------------------------------------------------------------------------------
    def _commit(self, *, in_rebalance: bool = False, everything: bool = False) -> None:
        """Flush the producer, then commit per partition what is below every held record.

        ``in_rebalance``: called from the revoke callback. Where the client runs it on another thread than
        ``poll()`` (kafka-python's heartbeat thread) only the asynchronous commit is safe; the broker handles it
        before this member's JoinGroup request (same connection, in order), so the next owner of a partition
        reads this commit. A failure there is not recovered from: the pipeline is rebuilt anyway.
        """
        assert self.producer is not None and self.consumer is not None
        if self._eos:
            if in_rebalance:
                self._abort()  # the open transaction is dropped: the next owner replays its records
            else:
                self._commit_transaction(everything=everything)
            return
        self.producer.flush()
        if self._send_error is not None:
            if not in_rebalance:
                self._recover(f"output not delivered: {self._send_error}")
            return  # in a rebalance the pipeline is rebuilt anyway: nothing is committed past the lost output
        # after a final flush every window is closed: the evidence the join still keeps is needed by no one
        offsets = self.planner.plan({} if everything else self.pipeline.held_offsets())
        if not offsets:
            return
        try:
            self.consumer.commit(offsets, blocking=not in_rebalance or self.consumer.callbacks_in_poll)
        except ClientError as exc:
            self.log.warning("kafka.commit_failed", error=str(exc))
            return
        self.planner.mark_committed(offsets)
        self.metrics.committed()

    def _commit_transaction(self, *, everything: bool) -> None:
        """exactly_once: release the outputs whose records are all below the new offsets, commit both at once."""
        assert self.producer is not None and self.consumer is not None
        offsets = self.planner.plan({} if everything else self.pipeline.held_offsets())
        try:
            for topic, value, key, headers, _ in self._outbox.release(self.planner.safe):
                self.producer.send(topic, value, key, headers, self._failed)
            if offsets:
                self.producer.send_offsets_to_transaction(offsets, self.consumer)
            self.producer.commit_transaction()
            self.producer.begin_transaction()
        except ClientError as exc:
            self._recover(f"transaction not committed: {exc}")
            return
        if self._send_error is not None:  # a send refused before the commit: the transaction did not hold it
            self._recover(f"output not delivered: {self._send_error}")
            return
        self.planner.mark_committed(offsets)
        self.metrics.committed()

    def _abort(self) -> None:
        """exactly_once: drop what the open transaction holds; its records are read again."""
        self._outbox.clear()
        assert self.producer is not None
        try:
            self.producer.abort_transaction()
            self.producer.begin_transaction()
        except ClientError as exc:
            self._send_error = exc  # the main loop's next commit replaces the producer

    def _recover(self, reason: str) -> None:
        """A produce failed: new producer, new pipeline, every partition back to its committed offset."""
        self.log.error("delivery.failed", reason=reason)
        self._send_error = None
        self._outbox.clear()
        assert self.producer is not None and self.consumer is not None
        self.producer.close(0)
        self.producer = self._make_producer(lambda: False)
        self._rebuild("delivery_failed")
        self._resume(self.consumer.rewind())

    def _revoked(self, revoked: list[TP]) -> None:
        """Before giving partitions up: every output acknowledged, safe offsets committed, state dropped.

        Runs inside ``poll()`` (kafka-python: maybe on its heartbeat thread, while the main thread waits in
        ``poll()``): the pipeline is ours.
        """
        if self._closed:
            return
        if self.planner.next:
            try:
                self._commit(in_rebalance=True)
            except ClientError as exc:
                self.log.warning("rebalance.commit_failed", error=str(exc))
        self._rebuild("rebalance")
        self.metrics.partitions_revoked([(tp.topic, tp.partition) for tp in revoked])
        self.log.info("rebalance.revoked", partitions=[f"{tp.topic}[{tp.partition}]" for tp in revoked])

    def _assigned(self, starts: Mapping[TP, int | None]) -> None:
        """Inside ``poll()``, in the main thread: the client has put each partition at its committed offset."""
        if self.planner.next:  # an assignment without a revoke before it (a lost session): start over too
            self._rebuild("rebalance")
        self._resume(starts)

    def _resume(self, starts: Mapping[TP, int | None]) -> None:
        """Every assigned partition restarts at its committed offset (the rebuilt pipeline holds nothing)."""
        for tp, start in starts.items():
            if start is not None:
                self.planner.processed(tp, start)  # known now: lag and position metrics
                self.planner.mark_committed({tp: start})
            # A partition not read yet must hold the windows open too (until it proves idle): otherwise the
            # first fetch of one topic could close windows before the other topics' first records arrive.
            # (`Pipeline.declare_stream` wants a first event time, unknown here: hence the watermarks directly.)
            # Not fetched yet, so behind (never idle) until its position and end offset say otherwise (#18).
            if self._internal is None:
                self.pipeline.input_behind(stream_of(tp), True)
            elif tp.topic == self._internal:  # stage-1 partitions feed no join; stage 2 has one stream per input
                for topic in self.inputs:
                    self.pipeline.input_behind(f"{self._substream(tp, topic)}[{tp.partition}]", True)
        # processing time must be known before the first record: without it the join judges idleness in event
        # time, and a partition with no record yet would count as idle
        self._emit(self.pipeline.tick(self._proc_ms))
        self.log.info("rebalance.assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in starts])

    def _rebuild(self, reason: str) -> None:
        if self.pipeline.counters.lines_in:  # state thrown away (not the empty pipeline of the first assignment)
            self.totals.rebuilds += 1
            self.metrics.pipeline_rebuilt(reason)
        self._add_pipeline_totals(self.pipeline, final=False)
        self.pipeline = self._new_pipeline()
        self.planner.forget()

    def _add_pipeline_totals(self, pipeline: Pipeline, *, final: bool) -> None:
        c = pipeline.counters
        self.totals.lines_parsed += c.lines_parsed
        self.totals.lines_dead_lettered += c.lines_dead_lettered
        # records fed but still held when a pipeline is dropped are read again from the committed offset
        self.totals.replayed_after_rebuild += c.lines_in - c.lines_parsed - c.lines_dead_lettered

    def _progress(self) -> None:
        """The periodic ``service.progress`` line: how far the service got and what it holds."""
        t = self.totals
        held, _ = self.pipeline.join.held_windows()
        self.log.info("service.progress", records_in=t.records_in, incidents=t.incidents,
                      watermark_lag_s=round(self.metrics.lag_s, 3), windows_held=held,
                      join_state=self.pipeline.join.state_size, commits=self.metrics.commit_count)

    def _report_positions(self) -> None:
        """Each assigned partition's stream: records not read yet (position below the end offset: it holds the
        windows however long the catch-up takes) or at its end offset (idle once quiet; at once if it never had
        a record), as Kafka Streams' ``max.task.idle.ms``. An end offset or a position not known yet (a partition
        not fetched yet): behind."""
        assert self.consumer is not None
        behind_of: dict[TP, bool] = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            processed, fetched = self.planner.next.get(tp), self.consumer.position(tp)
            position = max(processed, fetched) if processed is not None and fetched is not None else processed
            behind_of[tp] = high is None or position is None or position < high
        # repartition: at the internal topic's end, stage 1 may still be re-keying a backlog of its inputs into it
        rekeying = self._internal is not None and any(b for tp, b in behind_of.items() if tp.topic != self._internal)
        for tp, behind in behind_of.items():
            if self._internal is None:
                self.pipeline.input_behind(stream_of(tp), behind)
            elif tp.topic == self._internal:
                # at its end, stage 1's records may still be on their way (produced, not yet readable): quiet
                # decides, not the end offset
                for topic in self.inputs:
                    self.pipeline.input_behind(f"{self._substream(tp, topic)}[{tp.partition}]",
                                               True if behind or rekeying else None)

    def _lagging(self) -> bool:
        """Some partition has records we could not fetch (broker lost): processing time must not run."""
        assert self.consumer is not None
        lagging = False
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            nxt = self.planner.next.get(tp)
            if nxt is not None:
                self.metrics.consumer_position.labels(tp.topic, str(tp.partition)).set(nxt)
            if high is not None and nxt is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - nxt))
                lagging = lagging or high > nxt
        return lagging


def fit_dead_letter(doc: dict[str, Any], limit: int) -> bytes:
    """The dead letter as JSON, at most ``limit`` bytes: above it ``raw``, ``value`` and ``context`` are cut
    (halving until it fits, ``…`` marks the cut) and ``truncated`` gives each cut field's original length."""
    payload = serialise(Output("incident", doc, None))
    if len(payload) <= limit:
        return payload
    long = {k: v for k in ("raw", "value", "context") if isinstance(v := doc.get(k), str)}
    keep = limit // 2
    while True:
        cut = {**doc, **{k: v[:keep] + "…" for k, v in long.items() if len(v) > keep},
               "truncated": {k: len(v) for k, v in long.items() if len(v) > keep}}
        payload = serialise(Output("incident", cut, None))
        if len(payload) <= limit or keep == 0:
            return payload
        keep //= 2


def _text(value: bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape").decode("utf-8",
                                                                                            "backslashreplace")


def pipeline_factory(config: ServiceConfig) -> tuple[Callable[[], Pipeline], str | None]:
    """Configs read once → a maker of fresh pipelines (rebuilds need one) and the access format forced by
    ``diagnosis.log_format`` (used by access inputs that name none)."""
    d = config.diagnosis
    knowledge = load_knowledge(d.nginx_conf or None, list(d.fpm_conf), d.log_format or None, d.escape)
    known = {"combined", "main", *knowledge.formats}
    for i, inp in enumerate(config.inputs):
        if inp.format and inp.format not in known:
            raise UserConfigError(f"inputs.{i}.format: no log_format named {inp.format!r} "
                                  f"(known: {', '.join(sorted(known))}; define it in diagnosis.nginx_conf)")
    settings = PipelineSettings(
        parse=ParseSettings(formats=dict(knowledge.formats), timezone=ZoneInfo(d.timezone)),
        join=JoinSettings(match_window_ms=int(d.match_window_s * 1000),
                          evidence_window_ms=int(d.evidence_window_s * 1000),
                          allowed_lateness_ms=int(d.allowed_lateness_s * 1000),
                          idle_timeout_ms=int(d.idle_timeout_s * 1000), max_state=d.max_state),
        emit_events=bool(config.outputs.events_topic),
        episodes=_episodes(config),
    )
    topology = knowledge.topology
    return (lambda: Pipeline(settings, topology)), knowledge.forced_format


def _episodes(config: ServiceConfig) -> EpisodeSettings | None:
    """The episode rules when ``outputs.episodes_topic`` is set; a resolved episode stays held as long as the join
    may hold one of its records (``EpisodeSettings.retain_ms``)."""
    if not config.outputs.episodes_topic:
        return None
    d = config.diagnosis
    try:
        return EpisodeSettings(gap_ms=int(d.episode_gap_s * 1000), group_wait_ms=int(d.episode_wait_s * 1000),
                               group_interval_ms=int(d.episode_interval_s * 1000), fleet=d.episodes_fleet,
                               retain_ms=int((d.match_window_s + d.evidence_window_s + d.allowed_lateness_s) * 1000)
                               + JoinSettings().saturation_lookback_ms)
    except ValueError as exc:
        raise UserConfigError(f"diagnosis.episode_*: {exc}") from None


def _exit_after(seconds: float, log: Any) -> threading.Timer:
    """The process is gone ``seconds`` after a stop signal, whatever the main thread is blocked in (a client
    waiting for metadata or a broker does not look at the stop flag); what is not committed is read again."""

    def expire() -> None:
        log.error("service.stop_timeout", stop_timeout_s=seconds)
        os._exit(EXIT_STOP_TIMEOUT)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def run_command(args: argparse.Namespace) -> int:
    """``badgateway run``: config → service → exit 0 on SIGTERM/SIGINT after everything is emitted."""
    configure()
    config = load_config(getattr(args, "config", None), getattr(args, "set", []) or [])
    service = Service(config)
    deadline: list[threading.Timer] = []

    def stop(signum: int, frame: Any) -> None:
        service.stop()
        if deadline:  # a second signal: the operator does not want to wait
            os._exit(EXIT_STOP_TIMEOUT)
        deadline.append(_exit_after(config.delivery.stop_timeout_s, service.log))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return service.run()
    except ClientError as exc:
        raise KafkaError(f"kafka: {exc}") from exc
