"""The service's outputs on their Kafka topics: incidents keyed by host, events, and dead letters that carry the
record they came from (its key, headers and value) and fit the broker's size limit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from processor.core.events import Counters, DeadLetter
from processor.io.kafka.client import Msg
from processor.io.kafka.inputs import CommitPlanner, incident_sources
from processor.io.kafka.settings import OutputsSection
from processor.io.metrics import Metrics
from processor.io.sinks import serialise
from processor.pipeline import Output, Pipeline
from processor.runners.service_delivery import Delivery


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

    def add_pipeline(self, c: Counters) -> None:
        """A pipeline's counters, as it is dropped (a rebuild) or at the end."""
        self.lines_parsed += c.lines_parsed
        self.lines_dead_lettered += c.lines_dead_lettered
        # records fed but still held when a pipeline is dropped are read again from the committed offset
        self.replayed_after_rebuild += c.lines_in - c.lines_parsed - c.lines_dead_lettered


class KafkaOutputs:
    """Routes the pipeline's outputs to ``outputs.*_topic`` through the delivery (at least once or exactly once)."""

    def __init__(
        self,
        topics: OutputsSection,
        delivery: Delivery,
        planner: CommitPlanner,
        metrics: Metrics,
        totals: Totals,
        max_dead_letter_bytes: int,
        current: Callable[[], Pipeline],
    ) -> None:
        self.topics, self.delivery, self.planner, self.metrics = topics, delivery, planner, metrics
        self.totals = totals
        self.max_dead_letter_bytes = max_dead_letter_bytes
        self.current = current  # the pipeline now (rebuilt on a rebalance): it groups incidents into episodes

    def emit(self, outputs: list[Output], rec: Msg | None = None, *, final: bool = False) -> None:
        """``rec``: the record being fed, whose key and headers a dead letter of it carries. ``final``: the
        outputs of the last flush (every episode is resolved after them)."""
        outs = self.topics
        send = self.delivery.send
        for out in self.current().episode_outputs(outputs, final=final):
            if out.kind == "incident":
                host = (out.value.get("host") or {}).get("name") or ""
                send(
                    outs.incidents_topic,
                    serialise(out),
                    host.encode("utf-8", "surrogateescape"),
                    coords=incident_sources(out.value) if self.delivery.exactly_once else None,
                )
                self.planner.incident(out.value)
                self.metrics.incident(out.value)
                self.totals.incidents += 1
            elif out.kind == "episode":
                self._send_episode(out)
            elif out.kind == "event":
                if outs.events_topic:
                    send(
                        outs.events_topic,
                        serialise(out),
                        out.value.host.encode("utf-8", "surrogateescape"),
                        coords=[(out.value.source.stream, out.value.source.offset)],
                    )
            else:
                # the record being fed, or an entry completed later (then its headers are no longer at hand);
                # after a repartition the source is the sub-stream `<internal topic>/<original topic>`
                same = (
                    rec is not None
                    and out.source is not None
                    and out.source.offset == rec.offset
                    and out.source.partition == rec.partition
                    and out.source.name.split("/")[0] == rec.topic
                )
                self.dead_letter(out.value, rec if same else None)

    def _send_episode(self, out: Output) -> None:
        """An episode record, keyed like incidents (host; none when fleet-wide). Exactly once: it waits in the
        outbox for the newest record behind its episode (its records are held while it is open: docs/service.md)."""
        topic = self.topics.episodes_topic
        tracker = self.current().episodes
        if not topic or tracker is None:
            return
        host = out.value["host"]["name"]
        self.delivery.send(
            topic,
            serialise(out),
            host.encode("utf-8", "surrogateescape") if host is not None else None,
            coords=tracker.sources_of(out.value["episode"]["id"]) if self.delivery.exactly_once else None,
        )

    def dead_letter(self, dl: DeadLetter, rec: Msg | None) -> None:
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
        payload = fit_dead_letter(doc, self.max_dead_letter_bytes)
        self.delivery.send(
            self.topics.dead_letter_topic, payload, key, headers, coords=[(dl.source.stream, dl.source.offset)]
        )


def fit_dead_letter(doc: dict[str, Any], limit: int) -> bytes:
    """The dead letter as JSON, at most ``limit`` bytes: above it ``raw``, ``value`` and ``context`` are cut
    (halving until it fits, ``…`` marks the cut) and ``truncated`` gives each cut field's original length."""
    payload = serialise(Output("incident", doc, None))
    if len(payload) <= limit:
        return payload
    long = {k: v for k in ("raw", "value", "context") if isinstance(v := doc.get(k), str)}
    keep = limit // 2
    while True:
        cut = {
            **doc,
            **{k: v[:keep] + "…" for k, v in long.items() if len(v) > keep},
            "truncated": {k: len(v) for k, v in long.items() if len(v) > keep},
        }
        payload = serialise(Output("incident", cut, None))
        if len(payload) <= limit or keep == 0:
            return payload
        keep //= 2


def _text(value: bytes | None) -> str:
    if value is None:
        return ""
    return (
        value.decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    )
