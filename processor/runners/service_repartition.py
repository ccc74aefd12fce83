"""``kafka.repartition = true``: inputs whose shippers did not key by host are joined in two stages.

Stage 1 unwraps every input record, finds its host and re-keys it by host (murmur2, either client) into the
internal topic ``<group_id>-repartition``, without parsing; stage 2 reads that topic and feeds the join, one stream
per original topic inside each partition (each keeps its own event-time order, watermark and multi-line entries,
however stage 1 interleaved them). The same consumer group runs both stages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from processor.core.events import DeadLetter, Record, SourceRef
from processor.io.kafka.client import TP, Msg
from processor.io.kafka.inputs import CommitPlanner, InputReader
from processor.io.metrics import Metrics
from processor.pipeline import Pipeline
from processor.runners.service_delivery import Delivery
from processor.runners.service_feed import Feeder
from processor.runners.service_outputs import Totals


class Repartitioner:
    def __init__(
        self,
        internal: str,
        inputs: Mapping[str, InputReader],
        current: Callable[[], Pipeline],
        feeder: Feeder,
        delivery: Delivery,
        planner: CommitPlanner,
        totals: Totals,
        metrics: Metrics,
    ) -> None:
        self.internal, self.inputs, self.current, self.feeder = internal, inputs, current, feeder
        self.delivery, self.planner, self.totals, self.metrics = delivery, planner, totals, metrics

    def handle(self, tp: TP, records: list[Msg]) -> None:
        if tp.topic == self.internal:
            self._join(tp, records)
        else:
            self._rekey(tp, records)

    def _rekey(self, tp: TP, records: list[Msg]) -> None:
        """Stage 1: unwrap, find the host, re-key by host into the internal topic (no parsing)."""
        reader = self.inputs[tp.topic]
        topic = tp.topic.encode()
        for rec in records:
            source = SourceRef(rec.topic, rec.offset, rec.partition)
            got = reader.envelope.unwrap(rec.value, source)
            if isinstance(got, DeadLetter):
                self.totals.records_in += 1
                self.feeder.envelope_dead_letter(got, rec)
                continue
            host = reader.host(got.host, rec) or ""
            self.delivery.send(
                self.internal,
                got.text.encode("utf-8", "surrogateescape"),
                host.encode("utf-8", "surrogateescape"),
                [("bgw-topic", topic), ("bgw-source", str(source).encode())],
                coords=[(source.stream, source.offset)],
            )
        self.planner.processed(tp, records[-1].offset + 1)

    def _join(self, tp: TP, records: list[Msg]) -> None:
        """Stage 2: records already unwrapped and keyed by host; the original topic is in a header."""
        feed = self.current().feed
        emit = self.feeder.outputs.emit
        for rec in records:
            headers = dict(rec.headers or ())
            reader = self.inputs.get(headers.get("bgw-topic", b"").decode())
            if reader is None:
                continue  # not ours (another deployment's topic sharing the name): skipped, still committed
            host = rec.key.decode("utf-8", "surrogateescape") if rec.key else None
            text = (rec.value or b"").decode("utf-8", "surrogateescape")
            source = SourceRef(self.substream(tp, headers.get("bgw-topic", b"").decode()), rec.offset, rec.partition)
            outputs = feed(Record(text, source, reader.log_type, host, reader.access_format))
            if outputs:
                emit(outputs, rec)
            self.totals.records_in += 1
            self.metrics.records_in.labels(headers.get("bgw-topic", b"").decode(), reader.type).inc()
        self.planner.processed(tp, records[-1].offset + 1)

    def substream(self, tp: TP, topic: str) -> str:
        """The stage-2 stream of one original topic inside a partition of the internal topic."""
        name = f"{tp.topic}/{topic}"
        self.planner.alias(f"{name}[{tp.partition}]", tp)
        return name

    def streams(self, tp: TP) -> list[str]:
        """The join's streams behind one partition of the internal topic (one per input topic)."""
        return [f"{self.substream(tp, topic)}[{tp.partition}]" for topic in self.inputs]
