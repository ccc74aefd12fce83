"""The pipeline's block paths: many one-line records of one stream at once, the healthy access lines among them
found by one regex pass (``HealthyAccess``, processor/core/healthy.py) and joined without an ``Event`` each.

``feed_lines`` / ``feed_block`` serve the Kafka service's hot loop, ``parse_block`` / ``process_healthy_run`` batch
replay's; each gives exactly what ``feed`` (or ``parse_stream`` + ``process_event``) gives record by record.
``BlockFeeding`` is mixed into ``Pipeline`` (processor/pipeline.py), which sets the state declared here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import cast

from processor.core.assemble import EntryAssembler
from processor.core.events import NGINX_ACCESS, Counters, DeadLetter, Event, Record, SourceRef
from processor.core.healthy import FAILED
from processor.core.parse import RecordParser
from processor.diagnosis.join import DiagnosisJoin
from processor.pipeline_types import HealthyRun, Output, incident_outputs


class BlockFeeding:
    counters: Counters
    parser: RecordParser
    join: DiagnosisJoin
    _assembler: EntryAssembler
    _healthy_fast: bool
    _default_host: str

    # Pipeline's own, used by the block paths for the lines they do not take
    def feed(self, record: Record) -> list[Output]:
        raise NotImplementedError

    def _one(self, entry: Record) -> list[Output]:
        raise NotImplementedError

    def _blank(self, record: Record) -> bool:
        raise NotImplementedError

    def _assemble(self, record: Record) -> Iterator[Event | DeadLetter]:
        raise NotImplementedError

    def _parse_typed(self, entry: Record) -> Iterator[Event | DeadLetter]:
        raise NotImplementedError

    def _typed(self, entry: Record, parsed: Event | DeadLetter) -> Iterator[Event | DeadLetter]:
        raise NotImplementedError

    def feed_lines(
        self,
        name: str,
        partition: int | None,
        log_type: str | None,
        access_format: str | None,
        lines: Sequence[tuple[int, str, str | None]],
    ) -> list[tuple[int, list[Output]]]:
        """``feed`` for consecutive one-line records of one stream, each ``(offset, text, host)``: the same
        outputs, counters and state as ``feed(Record(text, SourceRef(name, offset, partition), log_type, host,
        access_format))`` on each in turn. Returns ``(index in lines, outputs)`` for the lines that gave any.

        The Kafka service's hot loop: a healthy access line costs its probe and the join's clock update, with no
        Record or SourceRef built for it.
        """
        out: list[tuple[int, list[Output]]] = []
        shortcut = self._healthy_fast and log_type == NGINX_ACCESS
        healthy = self._healthy
        stream = SourceRef(name, 0, partition).stream
        counters = self.counters
        for i, (offset, text, host) in enumerate(lines):
            got = (
                healthy(stream, text, host, access_format, 1)
                if shortcut and text and not text.isspace() and not self._assembler.is_open(stream)
                else None
            )
            if got is None:
                got = self.feed(Record(text, SourceRef(name, offset, partition), log_type, host, access_format))
            else:
                counters.lines_in += 1
            if got:
                out.append((i, got))
        return out

    def takes_blocks(self, log_type: str | None, access_format: str | None) -> bool:
        """Whether ``feed_block`` reads lines of this type and format (else it declines: ``feed_lines``)."""
        return self._healthy_fast and log_type == NGINX_ACCESS and self.parser.scans(access_format)

    def feed_block(
        self,
        name: str,
        partition: int | None,
        log_type: str | None,
        access_format: str | None,
        hosts: str | None | Sequence[str | None],
        offsets: Sequence[int],
        block: str,
    ) -> list[tuple[int, list[Output]]] | None:
        """``feed_lines`` for lines given as one newline-joined ``block`` (no line holds a newline), the
        ``i``-th at ``offsets[i]`` from ``hosts`` (one for all, or one per line): the same outputs, counters
        and state, with the healthy access lines found by one regex pass over the block
        (``RecordParser.healthy_access_block``) and each run of them of one time and host joined at once
        (``DiagnosisJoin.process_healthy_run``). An incident comes with the last line of the run that closed it.
        ``None``, with nothing fed, when the format has no scanner: ``feed_lines`` it.
        """
        if not (self._healthy_fast and log_type == NGINX_ACCESS):
            return None
        runs = self.parser.healthy_access_block(block, len(offsets), hosts, access_format)
        if runs is None:
            return None
        counters = self.counters
        stream = SourceRef(name, 0, partition).stream
        default_host = self._default_host
        process_run = self.join.process_healthy_run
        lines: list[str] | None = None
        out: list[tuple[int, list[Output]]] = []
        i = 0
        for ts, host, count in runs:
            if ts is None or ts is FAILED:  # the full path, line by line (a 502/504: no second probe)
                if lines is None:
                    lines = block.split("\n")
                for j in range(i, i + count):
                    record = Record(lines[j], SourceRef(name, offsets[j], partition), log_type, host, access_format)
                    if ts is None or self._assembler.is_open(stream):
                        got = self.feed(record)
                    else:  # what feed does for it: not blank, not healthy, not multi-line
                        counters.lines_in += 1
                        got = self._one(record)
                    if got:
                        out.append((j, got))
            else:
                ended = [o for entry in self._assembler.end_stream(stream) for o in self._one(entry)]
                if ended:  # an access line ends an error entry mixed into the stream
                    out.append((i, ended))
                counters.lines_in += count
                self._count_healthy(count, count)
                incidents = process_run(stream, cast(int, ts), NGINX_ACCESS, host or default_host, count)
                if incidents:
                    out.append((i + count - 1, incident_outputs(incidents)))
            i += count
        return out

    def _healthy(
        self, stream: str, text: str, host: str | None, access_format: str | None, line_count: int
    ) -> list[Output] | None:
        """A healthy NGINX access line with no event asked for (``None`` when it is not one: the full path
        decides): no Event is built, only its time moves the join's clocks; counted as parsed. The incidents
        its time closed."""
        ts_ms = self.parser.healthy_access_line_ms(text, host, access_format)
        if ts_ms is None:
            return None
        self._count_healthy(line_count, 1)
        incidents = self.join.process_healthy(stream, ts_ms, NGINX_ACCESS, host or self._default_host)
        return incident_outputs(incidents)

    def _count_healthy(self, lines: int, events: int) -> None:
        """Healthy access lines parsed without an Event: counted as parse_entry counts events."""
        self.counters.lines_parsed += lines
        by_type = self.counters.events_by_type
        by_type[NGINX_ACCESS] = by_type.get(NGINX_ACCESS, 0) + events

    def parse_block(
        self,
        name: str,
        log_type: str | None,
        access_format: str | None,
        host: str | None,
        first_offset: int,
        block: str,
        n: int,
    ) -> Iterator[Event | DeadLetter | HealthyRun]:
        """``parse_stream`` of ``n`` consecutive one-line records of the file ``name`` given as one newline-joined
        ``block`` (no line holds a newline), the first at line ``first_offset``, where ``takes_blocks``: the same
        events, dead letters and counters, in line order, except that each run of healthy access lines of one time
        and host comes as one ``HealthyRun`` (``process_healthy_run`` joins it as ``process_event`` would join
        its events one by one). Found by one regex pass over the block (``RecordParser.healthy_access_block``);
        a block the scanner declines is parsed line by line.
        """
        runs = self.parser.healthy_access_block(block, n, host, access_format)
        if runs is None:
            runs = [(None, host, n)]
        counters = self.counters
        lines: list[str] | None = None
        i = 0
        for ts, run_host, count in runs:
            if ts is None or ts is FAILED:  # parse_stream's path, line by line
                if lines is None:
                    lines = block.split("\n")
                parse = self.parser.parse
                by_type = counters.events_by_type
                for j in range(i, i + count):
                    record = Record(lines[j], SourceRef(name, first_offset + j), log_type, host, access_format)
                    counters.lines_in += 1
                    if ts is None and self._blank(record):
                        continue
                    if self._assembler.is_open(name):
                        yield from self._assemble(record)
                        continue
                    parsed = parse(record)  # _parse_typed, the common case (an event) without its generator
                    if type(parsed) is Event:
                        counters.lines_parsed += parsed.line_count
                        by_type[parsed.log_type] = by_type.get(parsed.log_type, 0) + 1
                        yield parsed
                    else:
                        yield from self._typed(record, parsed)
            else:
                for entry in self._assembler.end_stream(name):  # an access line ends an error entry mixed in
                    yield from self._parse_typed(entry)
                counters.lines_in += count
                self._count_healthy(count, count)
                yield HealthyRun(cast(int, ts), run_host, count, first_offset + i)
            i += count

    def process_healthy_run(self, stream: str, run: HealthyRun) -> list[Output]:
        """``process_event`` of the run's events, one after the other (``stream``: their file's name)."""
        incidents = self.join.process_healthy_run(
            stream, run.ts_ms, NGINX_ACCESS, run.host or self._default_host, run.lines
        )
        return incident_outputs(incidents) if incidents else []
