"""The Python API: records in, incidents (and optionally events and dead letters) out.

``Pipeline`` is what every mode drives — ``replay``, ``run`` (Kafka), ``follow``, ``filter`` — and what
an embedding stream processor (Quix Streams, Bytewax, a custom consumer) uses directly::

    pipeline = Pipeline(PipelineSettings(), Topology())
    for out in pipeline.feed(Record(line, SourceRef("error.log", 7), log_type="nginx_error", host="web-1")):
        ...
    for out in pipeline.flush():
        ...

Records in = parsed + dead-lettered, counted in physical lines (``pipeline.counters``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from grammars import error as error_grammar
from grammars import slowlog as slowlog_grammar
from grammars.prefix import has_prefix, strip_prefix
from processor.core.assemble import EntryAssembler
from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM_SLOWLOG, Counters, DeadLetter, Event, Record
from processor.core.parse import ParseSettings, RecordParser
from processor.core.watermark import NO_WATERMARK
from processor.diagnosis.episodes import EpisodeSettings, EpisodeTracker
from processor.diagnosis.join import DiagnosisJoin, JoinSettings
from processor.diagnosis.topology import Topology
from processor.pipeline_blocks import BlockFeeding
from processor.pipeline_types import HealthyRun, Output, OutputKind, incident_outputs

__all__ = ["HealthyRun", "Output", "OutputKind", "Pipeline", "PipelineSettings"]


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    parse: ParseSettings = field(default_factory=ParseSettings)
    join: JoinSettings = field(default_factory=JoinSettings)
    emit_events: bool = False
    episodes: EpisodeSettings | None = None  # group incidents into outage episodes (``episode_outputs``)


def _starts_after_prefix(test: Any) -> Any:
    def start(text: str) -> bool:
        try:
            # (strip_prefix builds its prefix's fields: asked only when there is a prefix)
            return bool(test(strip_prefix(text)[1] if has_prefix(text) else text))
        except Exception:  # noqa: BLE001 - a grammar bug: parse it alone, so it is dead-lettered, located
            return True

    return start


class Pipeline(BlockFeeding):
    """Parse → assemble → join. Pure: the caller feeds records and wall-clock ticks, and ships outputs."""

    def __init__(self, settings: PipelineSettings, topology: Topology | None = None) -> None:
        self.settings = settings
        self.topology = topology if topology is not None else Topology()
        self.counters = Counters()
        self.parser = RecordParser(settings.parse)
        self.join = DiagnosisJoin(self.topology, settings.join, self.counters)
        self.episodes = EpisodeTracker(settings.episodes) if settings.episodes is not None else None
        # feed's shortcut for healthy access lines: same outputs and counters, no Event built
        self._healthy_fast = not settings.emit_events
        self._emit_events = settings.emit_events
        self._default_host = settings.parse.default_host
        starts = {
            NGINX_ERROR: _starts_after_prefix(error_grammar.is_entry_start),
            PHP_FPM_SLOWLOG: _starts_after_prefix(slowlog_grammar.is_entry_start),
            # a plugin's multi-line log: its entries are assembled like the built-in ones
            **{p.name: _starts_after_prefix(p.is_entry_start) for p in settings.parse.plugins if p.is_entry_start},
        }
        self._multiline = frozenset(starts)
        self._assembler = EntryAssembler(starts, self._detected)

    def _detected(self, record: Record) -> Record | None:
        """``record`` typed as the log its line is (per line: streams may mix logs), ``None`` if none is."""
        found = self.parser.detect(record.text, quick=True)
        if found is None:
            return None
        log_type, access_format = found
        return Record(
            record.text, record.source, log_type, record.host, access_format, record.line_count, record.origin
        )

    def feed(self, record: Record) -> list[Output]:
        """One physical line (or one whole entry) in; whatever it completed out."""
        self.counters.lines_in += record.line_count
        if self._blank(record):
            return []
        if self._healthy_fast and record.log_type == NGINX_ACCESS and not self._assembler.is_open(record.source.stream):
            got = self._healthy(
                self.join.stream_of(record.source), record.text, record.host, record.access_format, record.line_count
            )
            if got is not None:
                return got
        out: list[Output] = []
        for parsed in self._assemble(record):
            out.extend(self._outputs(parsed))
        self._hold_open(record)
        return out

    def _outputs(self, parsed: Event | DeadLetter) -> list[Output]:
        if isinstance(parsed, DeadLetter):
            return [Output("dead_letter", parsed, parsed.source)]
        return self.process_event(parsed)

    def _assemble(self, record: Record) -> Iterator[Event | DeadLetter]:
        """One line through the assembler: its orphans dead-lettered, the entries it completed parsed."""
        complete, orphans = self._assembler.feed(record)
        for orphan, reason in orphans:
            yield self._orphan(orphan, reason)
        for entry in complete:
            yield from self._parse_typed(entry)

    def _parse_typed(self, entry: Record) -> Iterator[Event | DeadLetter]:
        """``parse_entry``; a one-line record its type refuses but another log's grammar recognises (the error
        lines of an access-typed container stream) is that log's line, assembled as such."""
        return self._typed(entry, self.parser.parse(entry))

    def _typed(self, entry: Record, parsed: Event | DeadLetter) -> Iterator[Event | DeadLetter]:
        """``_parse_typed`` of ``entry``, parsed already."""
        if isinstance(parsed, DeadLetter) and entry.line_count == 1 and entry.log_type not in self._multiline:
            other = self._assembler.retyped(entry)
            if other is not None:
                yield from self._assemble(other)
                return
        yield self._count(parsed)

    def _one(self, entry: Record) -> list[Output]:
        out: list[Output] = []
        for parsed in self._parse_typed(entry):
            out.extend(self._outputs(parsed))
        return out

    def parse_entry(self, entry: Record) -> Event | DeadLetter:
        """Parse one assembled entry and count it (parsed or dead-lettered)."""
        return self._count(self.parser.parse(entry))

    def _count(self, parsed: Event | DeadLetter) -> Event | DeadLetter:
        if isinstance(parsed, DeadLetter):
            self.counters.lines_dead_lettered += parsed.line_count
            return parsed
        self.counters.lines_parsed += parsed.line_count
        self.counters.events_by_type[parsed.log_type] = self.counters.events_by_type.get(parsed.log_type, 0) + 1
        return parsed

    def parse_stream(self, records: Iterable[Record], stream: str) -> Iterator[Event | DeadLetter]:
        """Assemble and parse one ordered stream (a file) without joining: batch replay merges the
        streams of all its files in event time, then calls ``process_event``."""
        counters = self.counters
        by_type = counters.events_by_type
        parse = self.parser.parse
        feed = self._assembler.feed
        is_open = self._assembler.is_open
        for record in records:
            counters.lines_in += record.line_count
            if self._blank(record):
                continue
            # each parsed entry as _parse_typed gives it, the common case (an event) without its generator
            if record.log_type is not None and record.log_type not in self._multiline and not is_open(stream):
                entries: Iterable[Record] = (record,)  # single-line logs (most lines): no assembler round trip
            else:
                entries, orphans = feed(record)  # what _assemble does
                for orphan, reason in orphans:
                    yield self._orphan(orphan, reason)
            for entry in entries:
                parsed = parse(entry)
                if type(parsed) is Event:
                    counters.lines_parsed += parsed.line_count
                    by_type[parsed.log_type] = by_type.get(parsed.log_type, 0) + 1
                    yield parsed
                else:
                    yield from self._typed(entry, parsed)
        for entry in self._assembler.end_stream(stream):
            yield from self._parse_typed(entry)

    def process_event(self, event: Event) -> list[Output]:
        """Join one parsed event; returns the event itself (when asked for) and closed incidents."""
        incidents = self.join.process(event)
        if not self._emit_events:
            return [Output("incident", inc, None) for inc in incidents] if incidents else []
        return [Output("event", event, event.source), *incident_outputs(incidents)]

    def join_progress(self, stream: str, ts_ms: int, log_type: str, host: str) -> list[Output]:
        """Lines of ``stream`` up to ``ts_ms`` were parsed elsewhere and need no joining (parallel replay)."""
        return incident_outputs(self.join.progress(stream, ts_ms, log_type, host))

    def declare_stream(self, stream: str, first_ts_ms: int) -> None:
        """Batch replay: this stream's first event is at ``first_ts_ms``; hold windows for it until then.
        A merging driver reports each stream's progress (``stream_at``), so no stream is judged idle by
        event time: a host whose clock lags behind is merged in its place, not skipped."""
        self.join.watermarks.event_time_idle = False
        self.join.watermarks.declare(stream, first_ts_ms - 1)

    def stream_at(self, stream: str, next_ts_ms: int) -> None:
        """Batch replay: the stream's next entry is at ``next_ts_ms`` (nothing before it is to come)."""
        self.join.watermarks.advance(stream, next_ts_ms - 1)

    def close_stream(self, stream: str) -> list[Output]:
        """A stream parsed by ``parse_stream`` ended: it stops holding the watermark back."""
        return incident_outputs(self.join.close_input(stream))

    def _blank(self, record: Record) -> bool:
        """Blank lines carry nothing (php-fpm writes one after its config test; slowlog entries are separated
        by them): counted as parsed and as blank, never an event nor a dead letter."""
        text = record.text
        if text and not text.isspace():  # what str.strip() strips, without the copy
            return False
        self.counters.lines_parsed += record.line_count
        self.counters.blank_lines += record.line_count
        return True

    def _orphan(self, orphan: Record, reason: str) -> DeadLetter:
        dl = DeadLetter(orphan.source, reason, orphan.text, orphan.log_type, line_count=orphan.line_count)
        self.counters.lines_dead_lettered += dl.line_count
        return dl

    def end_stream(self, stream: str) -> list[Output]:
        """A stream (file) ended: its open entry completes and it stops holding the watermark."""
        out: list[Output] = []
        for entry in self._assembler.end_stream(stream):
            out.extend(self._one(entry))
        out.extend(incident_outputs(self.join.close_input(stream)))
        return out

    def input_behind(self, stream: str, behind: bool | None) -> None:
        """A driver's word on one input (named as ``SourceRef.stream``): records not read yet (``True``: it
        holds the windows, never idle, however long the reading takes) or read to its end (``False``: idle once
        quiet for ``idle_timeout``, at once if it never had a record), or ``None``: nothing known, quiet is idle
        (as for drivers that say nothing)."""
        watermarks = self.join.watermarks
        watermarks.declare(stream, NO_WATERMARK)  # (a stream known already keeps its clock)
        watermarks.set_behind(stream, behind)

    def _hold_open(self, record: Record) -> None:
        """A line left its stream's entry open (until the next line, or the stream goes quiet): the stream is
        not idle meanwhile, so windows wait for the entry (else the failure it explains closes as ``unknown``)."""
        stream = self.join.stream_of(record.source)
        if stream in self._assembler.held_offsets():
            self.join.watermarks.touch(stream, record.log_type)

    def tick(self, now_ms: int) -> list[Output]:
        """Wall-clock progress (services only): lets idle inputs stop holding windows open, and completes the
        open multi-line entry of a stream gone idle (nothing more of it is coming now)."""
        out: list[Output] = []
        held = self._assembler.held_offsets()
        if held:  # first the entries (the windows they explain must not close without them)
            watermarks = self.join.watermarks
            watermarks.tick(now_ms)
            idle = set(watermarks.idle_streams()).intersection(held)
            if idle:
                last_record_now_ms = watermarks.last_record_now_ms
                for stream in sorted(idle):
                    clock = watermarks.streams.get(stream)
                    seen_now_ms = clock.last_seen_now_ms if clock is not None else None
                    for entry in self._assembler.end_stream(stream):
                        out.extend(self._one(entry))
                    watermarks.seen_at(stream, seen_now_ms)  # its lines came then: still quiet, still idle
                watermarks.last_record_now_ms = last_record_now_ms
        out.extend(incident_outputs(self.join.advance(now_ms)))
        return out

    def flush(self) -> list[Output]:
        """End of all input: complete open entries and close every window."""
        out: list[Output] = []
        for entry in self._assembler.flush():
            out.extend(self._one(entry))
        out.extend(incident_outputs(self.join.flush()))
        return out

    def episode_outputs(self, outputs: list[Output], *, final: bool = False) -> list[Output]:
        """``outputs`` followed by the episode records that they and the join's progress made due (``final``: at
        the end of all input, after ``flush``'s outputs: every episode resolved). A driver passes every batch of
        outputs through here, empty ones too (the watermark alone resolves an episode)."""
        tracker = self.episodes
        if tracker is None:
            return outputs
        records = [r for o in outputs if o.kind == "incident" for r in tracker.add(o.value)]
        records += tracker.finish() if final else tracker.advance(self.join.complete_before_ms)
        if not records:
            return outputs
        return [*outputs, *(Output("episode", r, None) for r in records)]

    def held_offsets(self) -> dict[str, int]:
        """Per stream, the lowest source offset whose record is still held (open entry, window, evidence).

        A Kafka driver may commit a partition only below this (and below unacknowledged outputs).
        """
        held = dict(self._assembler.held_offsets())
        for stream, offset in self.join.held_offsets().items():
            if stream not in held or offset < held[stream]:
                held[stream] = offset
        if self.episodes is not None:  # an open episode is replayed whole after a restart, or not at all
            for stream, offset in self.episodes.held_offsets().items():
                if stream not in held or offset < held[stream]:
                    held[stream] = offset
        return held
