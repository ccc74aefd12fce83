"""``timezone = "auto"`` in the service: the records of a host whose UTC offset is not known yet wait, in their
partition's order, until an access line of the host teaches it (``ZoneHold``, processor/runners/zone_hold.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge

from processor.core.events import NGINX_ACCESS, DeadLetter, Event, Record, SourceRef
from processor.core.parse import ParseSettings, RecordParser
from processor.io.kafka.client import TP, Msg
from processor.io.kafka.inputs import InputReader, partition_stream
from processor.io.metrics import Metrics
from processor.runners.service_config import ServiceConfig
from processor.runners.zone_hold import ZoneHold

_MAYBE_JSON = frozenset((b"{", b" ", b"\t", b"\n", b"\r"))  # a value starting so may be an envelope

Feed = Callable[[TP, InputReader, list[Msg]], None]


class ZoneGate:
    """Between the consumer and the feeder: learns hosts' offsets from access lines, holds what needs one."""

    def __init__(
        self,
        config: ServiceConfig,
        inputs: Mapping[str, InputReader],
        parse: ParseSettings,
        metrics: Metrics,
        log: Any,
        zones: dict[str, tzinfo],
    ) -> None:
        # ``zones``: the mapping the pipelines' parsers read (``ParseSettings.host_timezones``), filled as learned
        self.hold: ZoneHold[TP, Msg] = ZoneHold(
            ZoneInfo("UTC"), int(config.diagnosis.idle_timeout_s * 1000), zones=zones
        )
        self.inputs, self.log, self.max_state = inputs, log, config.diagnosis.max_state
        self._parser = RecordParser(parse)  # learning parses apart: no counters
        self._keyed = {i.topic for i in config.inputs if i.host_from in ("auto", "key")}  # raw lines: the key
        self.held_gauge = Gauge(
            "badgateway_timezone_held_records",
            "records waiting for their host's UTC offset (timezone = auto)",
            registry=metrics.registry,
        )
        self._fallbacks = Counter(
            "badgateway_timezone_fallbacks",
            "hosts read in UTC (timezone = auto: no offset learned)",
            registry=metrics.registry,
        )

    @property
    def zones(self) -> dict[str, tzinfo]:
        """The offsets learned so far: the pipeline's parser reads this very mapping."""
        return self.hold.zones

    def gate(self, tp: TP, reader: InputReader, records: list[Msg], feed: Feed, now_ms: int) -> list[Msg]:
        """Learn hosts' offsets from the access lines among ``records``, feed what that released, and hold the
        records that need an offset not known yet (with every later record of the partition). Returns the
        records to feed now, a prefix of ``records``; the others are fed in order once released."""
        hold = self.hold
        zones = hold.zones
        kind = reader.envelope.kind
        if not hold.blocked(tp) and (
            kind == "raw"
            or kind == "auto"
            and _MAYBE_JSON.isdisjoint({b"{" if rec.value is None else rec.value[:1] for rec in records})
        ):
            # no envelope to name another host: the common case, every host known and nothing held before them
            if tp.topic in self._keyed:  # the host is the key: one look per distinct key
                if all(
                    (k.decode("utf-8", "surrogateescape") if k else "") in zones for k in {rec.key for rec in records}
                ):
                    return records
            else:
                hosts = reader.hosts(records)
                if all((h or "") in zones for h in ((hosts,) if hosts is None or isinstance(hosts, str) else hosts)):
                    return records
        lines = [self._line_of(reader, rec) for rec in records]
        needs = [text is not None and reader.log_type != NGINX_ACCESS for _, text in lines]
        if reader.log_type in (NGINX_ACCESS, None):  # an access line teaches its host's offset
            for i, (rec, (host, text)) in enumerate(zip(records, lines)):
                if host in zones or text is None:
                    continue
                access, offset = self._offset_taught(reader, rec, host, text)
                # an access-typed input's line counts as one of the host's tries either way (replay reads the
                # file's first lines); one that is not an access line waits like an error line (a container's
                # stream mixes both: parsed now, it would be read in UTC)
                needs[i] = not access
                if access or reader.log_type == NGINX_ACCESS:
                    self.feed_released(hold.observe(host, offset), feed)
                    if offset is None and host in zones:
                        self.fell_back([host], "no access line with an offset among the host's first ones")
        return [
            rec
            for rec, (host, _), need in zip(records, lines, needs)
            if hold.admit(tp, rec.offset, host, need, rec, now_ms)
        ]

    def _line_of(self, reader: InputReader, rec: Msg) -> tuple[str, str | None]:
        """The record's host as the pipeline names it, and its line (None: its envelope dead-letters it)."""
        text = reader.envelope.raw_text(rec.value)
        if text is not None:
            return reader.host(None, rec) or "", text
        got = reader.envelope.unwrap(rec.value, SourceRef(rec.topic, rec.offset, rec.partition))
        if isinstance(got, DeadLetter):
            return reader.host(None, rec) or "", None
        return reader.host(got.host, rec) or "", got.text

    def _offset_taught(self, reader: InputReader, rec: Msg, host: str, text: str) -> tuple[bool, tzinfo | None]:
        """Whether the line is an access line, and the UTC offset its time carries (as replay's
        ``learn_host_timezones``)."""
        parsed = self._parser.parse(
            Record(text, SourceRef(rec.topic, rec.offset, rec.partition), reader.log_type, host, reader.access_format)
        )
        if not isinstance(parsed, Event) or parsed.log_type != NGINX_ACCESS:
            return False, None
        when = parsed.fields.get("time")
        return True, when.tzinfo if isinstance(when, datetime) and when.tzinfo is not None else None

    def feed_released(self, released: list[tuple[TP, list[Msg]]], feed: Feed) -> None:
        for tp, records in released:
            feed(tp, self.inputs[tp.topic], records)

    def fell_back(self, hosts: list[str], reason: str) -> None:
        for host in hosts:
            self._fallbacks.inc()
            self.log.warning(
                "timezone.fallback",
                host=host,
                timezone="UTC",
                reason=reason,
                hint="its NGINX error and PHP-FPM times are read in UTC; name the zone in "
                "diagnosis.timezone if its access log is not among the inputs",
            )

    def expire(self, behind_of: Mapping[TP, bool], now_ms: int, state_size: int, feed: Feed) -> None:
        """Hosts whose access lines are read to their end (the partitions of the same number of the access
        inputs: inputs are co-partitioned by host) and who waited ``idle_timeout_s`` fall back; so does the
        longest waiting one while more is held than ``max_state`` leaves."""
        hold = self.hold
        teachers = [tp for tp in behind_of if self.inputs[tp.topic].log_type in (NGINX_ACCESS, None)]
        settled = {
            tp for tp in hold.held_offsets() if not any(behind_of[t] for t in teachers if t.partition == tp.partition)
        }
        fallen, released = hold.expire(now_ms, settled, self.max_state - state_size)
        self.fell_back(
            fallen,
            "no access line of the host within diagnosis.idle_timeout_s of its access "
            "partitions being read to their end, or more held than diagnosis.max_state",
        )
        self.feed_released(released, feed)

    def release_all(self, feed: Feed) -> None:
        """End of input: no access line is coming for those waiting."""
        fallen, released = self.hold.release_all()
        self.fell_back(fallen, "stopped before an access line of the host came")
        self.feed_released(released, feed)

    def held_offsets(self, held: dict[str, int]) -> dict[str, int]:
        """``held`` (the pipeline's) with the records waiting for their host's offset added (never committed)."""
        for tp, offset in self.hold.held_offsets().items():
            stream = partition_stream(tp)
            held[stream] = min(offset, held.get(stream, offset))
        return held
