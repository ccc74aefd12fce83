"""Records of one partition into the pipeline, as fast as their shape allows: plain raw access lines a poll at a
time as one block (``Pipeline.feed_block``), runs of plain lines together (``feed_lines``), anything an envelope
must decide (JSON, a tombstone, an oversized value) alone, in its place."""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby
from typing import Any

from processor.core.events import DeadLetter, Record, SourceRef
from processor.io.kafka.client import TP, Msg
from processor.io.kafka.inputs import InputReader
from processor.io.metrics import Metrics
from processor.pipeline import Pipeline
from processor.runners.service_outputs import KafkaOutputs, Totals


class Feeder:
    """Feeds partitions' records to the current pipeline (``current()``: rebuilt on a rebalance) and their
    outputs to ``outputs``; warns once per host met on two partition numbers (inputs not co-partitioned)."""

    def __init__(
        self, current: Callable[[], Pipeline], outputs: KafkaOutputs, totals: Totals, metrics: Metrics, log: Any
    ) -> None:
        self.current, self.outputs, self.totals, self.metrics, self.log = current, outputs, totals, metrics, log
        self._host_partition: dict[str, int] = {}  # first partition number each host was seen on
        self._warned_hosts: set[str] = set()

    def feed(self, tp: TP, reader: InputReader, records: list[Msg]) -> None:
        """A poll's records of one partition, in offset order."""
        envelope = reader.envelope
        if not self.current().takes_blocks(reader.log_type, reader.access_format):
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
            self.check_partition(host, records[0])
        got = self.current().feed_block(
            tp.topic,
            tp.partition,
            reader.log_type,
            reader.access_format,
            hosts,
            [rec.offset for rec in records],
            block.decode("utf-8", "surrogateescape"),
        )
        if got is None:  # the pipeline declined after all: nothing was fed
            self._feed_records(tp, reader, records)
            return
        self.totals.block_records += len(records)
        for i, outputs in got:
            self.outputs.emit(outputs, records[i])

    def _feed_records(self, tp: TP, reader: InputReader, records: list[Msg]) -> None:
        raw_text = reader.envelope.raw_text
        host_of = reader.host
        check_partition = self.check_partition
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
                self._feed_one(reader, rec)
                continue
            host = host_of(None, rec)
            check_partition(host, rec)
            lines.append((rec.offset, text, host))
            run.append(rec)
        if lines:
            self._feed_lines(tp, reader, lines, run)

    def _feed_lines(
        self, tp: TP, reader: InputReader, lines: list[tuple[int, str, str | None]], run: list[Msg]
    ) -> None:
        for i, outputs in self.current().feed_lines(
            tp.topic, tp.partition, reader.log_type, reader.access_format, lines
        ):
            self.outputs.emit(outputs, run[i])

    def _feed_one(self, reader: InputReader, rec: Msg) -> None:
        source = SourceRef(rec.topic, rec.offset, rec.partition)
        got = reader.envelope.unwrap(rec.value, source)
        if isinstance(got, DeadLetter):
            self.envelope_dead_letter(got, rec)
            return
        host = reader.host(got.host, rec)
        self.check_partition(host, rec)
        outputs = self.current().feed(
            Record(got.text, source, reader.log_type, host, reader.access_format, 1, got.extra.get("log_file"))
        )
        if outputs:
            self.outputs.emit(outputs, rec)

    def envelope_dead_letter(self, dl: DeadLetter, rec: Msg) -> None:
        """A record whose envelope cannot be read: dead-lettered with the record itself."""
        self.totals.envelope_dead_letters += 1
        self.metrics.dead_lettered.labels("envelope").inc()
        self.outputs.dead_letter(dl, rec)

    def check_partition(self, host: str | None, rec: Msg) -> None:
        if host is not None and self._host_partition.setdefault(host, rec.partition) != rec.partition:
            self._not_copartitioned(host, rec)

    def _not_copartitioned(self, host: str, rec: Msg) -> None:
        """One host on two partition numbers: the shippers' partitioners differ (say it once per host)."""
        if host in self._warned_hosts:
            return
        self._warned_hosts.add(host)
        self.log.warning(
            "inputs.not_copartitioned",
            host=host,
            partitions=[self._host_partition[host], rec.partition],
            topic=rec.topic,
            hint="the join needs one host's lines on the same partition number of every input topic: "
            "give every shipper the host as key and the same partitioner (murmur2); with a "
            "single member the incidents are still right",
        )
