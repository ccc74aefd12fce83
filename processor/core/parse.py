"""Raw record → typed ``Event`` or located ``DeadLetter``, with the event time in UTC milliseconds.

The grammars give a dict of typed fields; this module picks the grammar for the record's log type,
strips shipper prefixes, and turns the logged time into epoch milliseconds (NGINX error and PHP-FPM
logs carry no offset: their source's timezone setting applies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from grammars import access as access_grammar
from grammars import error as error_grammar
from grammars import fpm as fpm_grammar
from grammars import fpm_access as fpm_access_grammar
from grammars import slowlog as slowlog_grammar
from grammars.detect import detect_line
from grammars.lowering import Scanner
from grammars.plugins import GrammarPlugin
from grammars.prefix import has_prefix, strip_prefix
from grammars.result import ParseError
from processor.core.events import (
    NGINX_ACCESS,
    NGINX_ERROR,
    PHP_FPM,
    PHP_FPM_ACCESS,
    PHP_FPM_SLOWLOG,
    DeadLetter,
    Event,
    Fields,
    Record,
)
from processor.core.healthy import Failed, HealthyAccess, Probe
from processor.core.timefmt import OUT_OF_RANGE, aware_ms, in_range, local_ms

Parse = Callable[[str], "Fields | ParseError"]


@dataclass(frozen=True, slots=True)
class ParseSettings:
    """Access formats by name, and the timezone of logs that write no offset (per log type)."""

    formats: Mapping[str, access_grammar.AccessFormat] = field(default_factory=dict)
    timezone: tzinfo = UTC
    timezones: Mapping[str, tzinfo] = field(default_factory=dict)
    default_host: str = ""
    # learned from a host's access log when no timezone was given (see replay's --timezone auto)
    host_timezones: Mapping[str, tzinfo] = field(default_factory=dict)
    plugins: tuple[GrammarPlugin, ...] = ()


def event_ts_ms(fields: Fields, tz: tzinfo) -> int | None:
    """Epoch ms of the entry's own time; naive times are read in ``tz``."""
    value = fields.get("time")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return local_ms(value, tz)
        return aware_ms(value)
    msec = fields.get("msec")
    if isinstance(msec, (int, float)) and math.isfinite(msec):
        return int(msec * 1000)
    return None


class RecordParser(HealthyAccess):
    """Parses records of any log type into events; never raises."""

    def __init__(self, settings: ParseSettings) -> None:
        self.settings = settings
        self._formats: dict[str, access_grammar.AccessFormat] = {
            "combined": access_grammar.COMBINED,
            "main": access_grammar.MAIN,
            "combined_plus": access_grammar.COMBINED_PLUS,
            **settings.formats,
        }
        # the configured formats first: a custom format often starts like combined, and combined_plus
        # (combined + untyped rest) must only ever be the last resort
        self._detect_formats = (
            *settings.formats.values(),
            access_grammar.COMBINED,
            access_grammar.MAIN,
            access_grammar.COMBINED_PLUS,
        )
        self._by_type: dict[str, Parse] = {
            NGINX_ERROR: error_grammar.parse_error_entry,
            PHP_FPM: fpm_grammar.parse_fpm_line,
            PHP_FPM_SLOWLOG: slowlog_grammar.parse_slowlog_entry,
            PHP_FPM_ACCESS: fpm_access_grammar.parse_fpm_access_line,
        }
        self._tz: dict[tuple[str, str], tzinfo] = {}
        self._plugins = {p.name: p for p in settings.plugins}
        for plugin in settings.plugins:
            self._by_type.setdefault(plugin.name, plugin.parse)
        # healthy_access_line_ms: the (status, time) probe of each access format named by records (None: no probe)
        self._probes: dict[str | None, Probe] = {}
        self._scanners: dict[str | None, Scanner | None] = {}  # healthy_access_block's, by format name
        # healthy_access_block's answers by status text and by (aware) time text
        self._status_answers: dict[str, bool | None | Failed] = {}
        self._time_answers: dict[str, int | None] = {}
        self._scan_misses: dict[str | None, int] = {}  # blocks in a row where the scan answered for no line
        self._last_time: datetime | None = None  # consecutive lines share their second: its epoch ms, kept
        self._last_time_ms: int | None = 0
        # _parse's last entry time: its datetime, the timezone it was read in, its epoch ms
        self._parsed_time: object = None
        self._parsed_tz: tzinfo | None = None
        self._parsed_ms: int | None = None

    def format_named(self, name: str) -> access_grammar.AccessFormat | None:
        return self._formats.get(name)

    def detect(self, text: str, quick: bool = False) -> tuple[str, str | None] | None:
        """(log type, access format name) for one line, or None (``quick``: see ``detect_line``)."""
        _, rest = strip_prefix(text)
        found = detect_line(rest, self._detect_formats, quick)
        if found is None:
            for plugin in self._plugins.values():
                if plugin.detect(rest):
                    return plugin.name, None
            return None
        log_type, fmt = found
        return log_type, (fmt.name if fmt is not None else None)

    def parse(self, record: Record) -> Event | DeadLetter:
        try:
            return self._parse(record)
        except Exception as exc:  # noqa: BLE001 - a grammar bug must not stop the pipeline
            return DeadLetter(
                record.source,
                f"internal parser error: {type(exc).__name__}: {exc}",
                record.text,
                record.log_type,
                line_count=record.line_count,
            )

    def _tz_for(self, host: str, log_type: str) -> tzinfo:
        tz = self._tz.get((host, log_type))
        if tz is None:
            tz = self._tz[(host, log_type)] = self.settings.host_timezones.get(host) or self.settings.timezones.get(
                log_type, self.settings.timezone
            )
        return tz

    def _parse(self, record: Record) -> Event | DeadLetter:
        text = record.text
        prefix: Fields | None = None
        if "\n" in text:
            prefix, text = _strip_each(text)
        elif has_prefix(text):
            prefix, text = strip_prefix(text)
        log_type = record.log_type
        fmt_name = record.access_format
        if log_type is None:
            found = self.detect(text)
            if found is None:
                return DeadLetter(
                    record.source,
                    "unrecognised log line (no grammar matches)",
                    record.text,
                    None,
                    1,
                    _context(text, 1),
                    record.line_count,
                )
            log_type, fmt_name = found
        result: Fields | ParseError
        if log_type == NGINX_ACCESS:
            result = self._parse_access(text, fmt_name)
        else:
            parse = self._by_type.get(log_type)
            if parse is None:
                return DeadLetter(
                    record.source, f"unknown log type {log_type!r}", record.text, log_type, line_count=record.line_count
                )
            result = parse(text)
        if isinstance(result, ParseError):
            return DeadLetter(
                record.source, result.reason, record.text, log_type, result.column, result.context(), record.line_count
            )
        if prefix and any(v is not None for v in prefix.values()):
            result["shipper"] = prefix
        if record.origin is not None:
            # several PHP-FPM masters in one partition: their log file tells their lifecycles apart
            result["log_file"] = record.origin
        host = record.host or self.settings.default_host
        tz = self._tz_for(host, log_type)
        value = result.get("time")
        if value is self._parsed_time and tz is self._parsed_tz and value is not None:
            ts_ms: int | None = self._parsed_ms  # consecutive entries share their second (and its datetime)
        else:
            ts_ms = event_ts_ms(result, tz)
            if isinstance(value, datetime):
                self._parsed_time, self._parsed_tz, self._parsed_ms = value, tz, ts_ms
        if ts_ms is None:
            shipper_time = prefix.get("shipper_time") if prefix else None
            if isinstance(shipper_time, datetime):
                ts_ms = event_ts_ms({"time": shipper_time}, tz)
        if ts_ms is None:
            return DeadLetter(
                record.source,
                "entry has no timestamp to place it in event time",
                record.text,
                log_type,
                line_count=record.line_count,
            )
        if in_range(ts_ms) is None:
            return DeadLetter(record.source, OUT_OF_RANGE, record.text, log_type, line_count=record.line_count)
        plugin = self._plugins.get(log_type) if self._plugins else None
        if plugin is not None:
            result.setdefault("grammar", plugin.name)
            log_type = plugin.stream_type
        return Event(log_type, host, ts_ms, result, record.source, record.text, record.line_count)

    def _parse_access(self, text: str, fmt_name: str | None) -> Fields | ParseError:
        if text.startswith("{"):
            # an escape=json log_format (`"time":"$time_iso8601"`) types its own keys: the configured format
            # first, the generic JSON reader (keys named like variables) only where none parses the line
            named = self._formats.get(fmt_name) if fmt_name is not None else None
            for candidate in (named,) if named is not None else self.settings.formats.values():
                got = candidate.parse(text) if candidate.fast is None else candidate.fast.parse(text)
                if got is not None and not isinstance(got, ParseError):
                    return got
            generic = access_grammar.parse_json_access(text)
            if named is not None and (isinstance(generic, ParseError) or generic.get("time") is None):
                return named.parse(text)  # where the configured format fails: its located error
            return generic
        fmt = self._formats.get(fmt_name or "combined")
        if fmt is None:
            return ParseError(f"unknown log_format {fmt_name!r}", 1, text)
        result = fmt.parse(text)
        if isinstance(result, ParseError) and fmt_name is None:
            # an unnamed access record: try the other known formats before giving up. Only their match
            # counts (the error reported is fmt's), so their lowered regex alone answers: no pyparsing run
            # to locate an error nobody reads (the differential tests hold regex and pyparsing to one answer)
            for other in self._detect_formats:
                if other is not fmt:
                    alt = other.parse(text) if other.fast is None else other.fast.parse(text)
                    if alt is not None and not isinstance(alt, ParseError):
                        return alt
        return result


def _strip_each(text: str) -> tuple[Fields, str]:
    lines = text.split("\n")
    first_prefix, first = strip_prefix(lines[0])
    rest = [strip_prefix(line)[1] for line in lines[1:]]
    return first_prefix, "\n".join([first, *rest])


def _context(text: str, column: int) -> str:
    return ParseError("", column, text).context()
