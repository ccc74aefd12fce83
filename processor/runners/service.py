"""``badgateway run``: the Kafka service — a consumer group in, incidents (events, dead letters) out.

One loop: poll → unwrap each record's envelope → ``Pipeline.feed`` → produce the outputs; every 250 ms a
processing-time tick; every ``commit_interval_s`` flush the producer and commit what ``CommitPlanner`` says is
safe. On a rebalance or a failed delivery the pipeline is rebuilt and every partition re-read from its committed
offset: nothing held in a window is lost, and a replayed record gives the same incident with the same ``event.id``.

``Service`` owns the life cycle, the loop and the rebalance; it delegates feeding to ``Feeder``
(service_feed.py), outputs to ``KafkaOutputs`` (service_outputs.py), delivery and commits to ``AtLeastOnce`` /
``ExactlyOnce`` (service_delivery.py), ``kafka.repartition`` to ``Repartitioner`` (service_repartition.py) and
``timezone = "auto"`` to ``ZoneGate`` (service_zones.py).
"""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from processor.io.kafka.client import TP, ClientError, Consumer, Msg, backend
from processor.io.kafka.inputs import CommitPlanner, InputReader, partition_stream, wait_for_topics, with_backoff
from processor.io.log import get_logger
from processor.io.metrics import Metrics
from processor.pipeline import Pipeline
from processor.runners import service_positions as positions
from processor.runners.service_config import ServiceConfig, redacted
from processor.runners.service_delivery import AtLeastOnce, Delivery, ExactlyOnce
from processor.runners.service_feed import Feeder
from processor.runners.service_outputs import KafkaOutputs, Totals, fit_dead_letter
from processor.runners.service_repartition import Repartitioner
from processor.runners.service_zones import ZoneGate
from processor.runners.settings import pipeline_factory

__all__ = ["Service", "Totals", "fit_dead_letter", "pipeline_factory"]

TICK_S = 0.25
EXIT_STOP_TIMEOUT = 1  # the stop deadline passed (or a second signal came)


class Service:
    """Owns the clients, the pipeline and the commit rule; ``run()`` until ``stop()`` (a signal)."""

    def __init__(self, config: ServiceConfig, log: Any = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.log = log if log is not None else get_logger()
        self.metrics = metrics if metrics is not None else Metrics()
        auto_zone = config.diagnosis.timezone == "auto"
        zones: dict[str, tzinfo] = {}  # timezone = "auto": filled as hosts' offsets are learned
        self._new_pipeline, forced_format = pipeline_factory(config, zones if auto_zone else None)
        self.pipeline: Pipeline = self._new_pipeline()
        self.inputs = {i.topic: InputReader(i, config.delivery.max_record_bytes, forced_format) for i in config.inputs}
        self.planner = CommitPlanner()
        self.totals = Totals()
        self.client = backend(config.kafka)
        self.consumer: Consumer | None = None
        self._stopping = False
        self._closed = False
        self._proc_ms = int(time.time() * 1000)  # processing time; frozen while the broker stalls us
        # stable across restarts of one member: the restarted process fences its killed predecessor and aborts the
        # transaction it left open at once (else read_committed readers wait for the transaction timeout)
        eos = config.delivery.exactly_once
        txid = config.kafka.transactional_id or f"badgateway-{config.kafka.group_id}-{socket.gethostname()}"
        self.delivery: Delivery = (ExactlyOnce if eos else AtLeastOnce)(
            self.client, config.kafka, self.planner, self.metrics, self.log, txid if eos else None
        )
        self.outputs = KafkaOutputs(
            config.outputs,
            self.delivery,
            self.planner,
            self.metrics,
            self.totals,
            config.delivery.max_dead_letter_bytes,
            lambda: self.pipeline,
        )
        self.feeder = Feeder(lambda: self.pipeline, self.outputs, self.totals, self.metrics, self.log)
        self.zones: ZoneGate | None = None
        if auto_zone:
            self.zones = ZoneGate(config, self.inputs, self.pipeline.settings.parse, self.metrics, self.log, zones)
        # repartition: stage 1 re-keys every input record by host (one partitioner: murmur2, either client) into
        # this internal topic, stage 2 joins from it; the same consumer group runs both
        self.repartitioner: Repartitioner | None = None
        if config.kafka.repartition:
            self.repartitioner = Repartitioner(
                f"{config.kafka.group_id}-repartition",
                self.inputs,
                lambda: self.pipeline,
                self.feeder,
                self.delivery,
                self.planner,
                self.totals,
                self.metrics,
            )

    def stop(self, *_: Any) -> None:
        """Ask the loop to finish (signal-safe: only sets a flag)."""
        self._stopping = True

    # -- life cycle ---------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.config
        self.metrics.serve(cfg.metrics.host, cfg.metrics.port)  # a busy port: one line, before anything starts
        self.log.info("service.starting", config=redacted(cfg))
        if not self.delivery.start(lambda: self._stopping):
            return 0
        self.consumer = with_backoff(
            lambda: self.client.make_consumer(cfg.kafka, read_committed=cfg.delivery.exactly_once),
            "consumer",
            self.log,
            max_s=cfg.kafka.connect_backoff_max_s,
            stopping=lambda: self._stopping,
        )
        if self.consumer is None:
            self.delivery.close()
            return 0
        internal = self.repartitioner.internal if self.repartitioner else None
        if not wait_for_topics(
            self.client,
            cfg.kafka,
            cfg.inputs,
            cfg.outputs,
            internal,
            self.log,
            stopping=lambda: self._stopping,
            sleep=self._sleep,
        ):
            self._close()
            return 0
        topics = list(self.inputs) + ([internal] if internal else [])
        # Everything built so far (grammars, configs, clients) lives as long as the process: out of the cyclic
        # collector's sight, a full collection scans only the pipeline's state. Without this, a full collection
        # every few thousand records rescans the grammars, and consuming with confluent-kafka ran at 110k
        # records/s instead of 750k (bench_service.py). The youngest generation is collected every 50,000
        # allocations instead of 700, the middle one every 50 young collections instead of 10: each 502/504
        # allocates dozens of objects (event, pending, incident) that live until its window closes, each record
        # polled a tuple; at 100% failures the collector took ~20% of the time at 10,000/10 (bench_outage.py
        # run-confluent: ~6 of 30 s; ~1.3 s now).
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, gc.get_threshold()[2])
        self.consumer.subscribe(topics, self._assigned, self._revoked)
        self.log.info("service.started", inputs=list(self.inputs), group=cfg.kafka.group_id, client=cfg.kafka.client)
        clean = False
        try:
            self._loop()
            clean = True
        finally:
            self._shutdown(flush=clean and cfg.delivery.on_stop == "flush")
        return 0

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
                lagging = positions.lagging(self.consumer, self.planner, self.metrics)
                self._report_positions()
                self.outputs.emit(self.pipeline.tick(self._proc_ms))
                self.metrics.sync(
                    self.pipeline.counters,
                    self.pipeline.join.state_size,
                    self.pipeline.join.watermarks.current(),
                    *self.pipeline.join.held_windows(),
                )
                if self.zones is not None:
                    self.zones.held_gauge.set(self.zones.hold.size)
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
            if flush and self.zones is not None:  # end of input: no access line is coming for those waiting
                self.zones.release_all(self.feeder.feed)
            if flush:
                self.outputs.emit(self.pipeline.flush(), final=True)
            self._commit(everything=flush)
        except ClientError as exc:
            self.log.error("service.final_commit_failed", error=str(exc))
        finally:
            self.totals.add_pipeline(self.pipeline.counters)
            if self.zones is not None:  # a handoff: the next owner reads them (not committed)
                self.totals.replayed_after_rebuild += self.zones.hold.drop()
            t = self.totals
            self.log.info(
                "service.stopped",
                records_in=t.records_in,
                lines_parsed=t.lines_parsed,
                lines_dead_lettered=t.lines_dead_lettered,
                envelope_dead_letters=t.envelope_dead_letters,
                replayed_after_rebuild=t.replayed_after_rebuild,
                incidents=t.incidents,
                rebuilds=t.rebuilds,
                block_records=t.block_records,
                on_stop="flush" if flush else "handoff",
            )
            self._close()

    def _close(self) -> None:
        self._closed = True  # the revoke callback that consumer.close() runs has nothing left to do
        if self.consumer is not None:
            try:
                self.consumer.close()
            except ClientError as exc:
                self.log.warning("kafka.close_failed", error=str(exc))
        self.delivery.close()

    # -- records in ----------------------------------------------------------------------------------------
    def _handle(self, tp: TP, records: list[Msg]) -> None:
        if self.repartitioner is not None:
            self.repartitioner.handle(tp, records)
            return
        reader = self.inputs[tp.topic]
        fed = records
        if self.zones is not None:
            fed = self.zones.gate(tp, reader, records, self.feeder.feed, self._proc_ms)
            if self.zones.hold.blocked(tp):  # its records wait: at once not idle (the next tick says so again)
                self.pipeline.input_behind(partition_stream(tp), True)
        if fed:
            self.feeder.feed(tp, reader, fed)
        self.totals.records_in += len(records)
        self.metrics.records_in.labels(tp.topic, reader.type).inc(len(records))
        self.planner.processed(tp, records[-1].offset + 1)

    def _held_offsets(self) -> dict[str, int]:
        """What must not be committed: the pipeline's held records and those waiting for their host's offset."""
        held = self.pipeline.held_offsets()
        return held if self.zones is None else self.zones.held_offsets(held)

    # -- delivery ---------------------------------------------------------------------------------------
    def _commit(self, *, in_rebalance: bool = False, everything: bool = False) -> None:
        """Commit what is safe (``everything`` after a final flush: every window is closed, the evidence the
        join still keeps is needed by no one); a failed delivery outside a rebalance is recovered from."""
        assert self.consumer is not None
        failed = self.delivery.commit(
            self.consumer, {} if everything else self._held_offsets(), in_rebalance=in_rebalance
        )
        if failed is not None:
            self._recover(failed)

    def _recover(self, reason: str) -> None:
        """A produce failed: new producer, new pipeline, every partition back to its committed offset."""
        self.log.error("delivery.failed", reason=reason)
        assert self.consumer is not None
        self.delivery.restart()
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
            if self.repartitioner is None:
                self.pipeline.input_behind(partition_stream(tp), True)
            elif tp.topic == self.repartitioner.internal:  # stage-1 partitions feed no join; stage 2: one per input
                for stream in self.repartitioner.streams(tp):
                    self.pipeline.input_behind(stream, True)
        # processing time must be known before the first record: without it the join judges idleness in event
        # time, and a partition with no record yet would count as idle
        self.outputs.emit(self.pipeline.tick(self._proc_ms))
        self.log.info("rebalance.assigned", partitions=[f"{tp.topic}[{tp.partition}]" for tp in starts])

    def _rebuild(self, reason: str) -> None:
        if self.pipeline.counters.lines_in:  # state thrown away (not the empty pipeline of the first assignment)
            self.totals.rebuilds += 1
            self.metrics.pipeline_rebuilt(reason)
        self.totals.add_pipeline(self.pipeline.counters)
        if self.zones is not None:  # read again from the committed offsets, like the pipeline's held records
            self.totals.replayed_after_rebuild += self.zones.hold.drop()
        self.pipeline = self._new_pipeline()
        self.planner.forget()

    def _progress(self) -> None:
        """The periodic ``service.progress`` line: how far the service got and what it holds."""
        t = self.totals
        held, _ = self.pipeline.join.held_windows()
        self.log.info(
            "service.progress",
            records_in=t.records_in,
            incidents=t.incidents,
            watermark_lag_s=round(self.metrics.lag_s, 3),
            windows_held=held,
            join_state=self.pipeline.join.state_size,
            commits=self.metrics.commit_count,
            **({"timezone_held": self.zones.hold.size} if self.zones is not None else {}),
        )

    def _report_positions(self) -> None:
        """Tell the join which partitions' streams are behind (``service_positions.behind``), with the records
        waiting for a host's offset counted as not read."""
        assert self.consumer is not None
        behind_of = positions.behind(self.consumer, self.planner)
        if self.zones is not None:
            self.zones.expire(behind_of, self._proc_ms, self.pipeline.join.state_size, self.feeder.feed)
            for tp in self.zones.hold.held_offsets():  # its records wait: not read, as far as the join can tell
                behind_of[tp] = True
        internal = self.repartitioner.internal if self.repartitioner is not None else None
        # repartition: at the internal topic's end, stage 1 may still be re-keying a backlog of its inputs into it
        rekeying = internal is not None and any(b for tp, b in behind_of.items() if tp.topic != internal)
        for tp, behind in behind_of.items():
            if self.repartitioner is None:
                self.pipeline.input_behind(partition_stream(tp), behind)
            elif tp.topic == internal:
                # at its end, stage 1's records may still be on their way (produced, not yet readable): quiet
                # decides, not the end offset
                for stream in self.repartitioner.streams(tp):
                    self.pipeline.input_behind(stream, True if behind or rekeying else None)
