"""Raw record → typed ``Event`` or located ``DeadLetter``, with the event time in UTC milliseconds.

The grammars give a dict of typed fields; this module picks the grammar for the record's log type,
strips shipper prefixes, and turns the logged time into epoch milliseconds (NGINX error and PHP-FPM
logs carry no offset: their source's timezone setting applies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo, timezone
from functools import lru_cache
from itertools import groupby
from typing import Any, Final, cast

from grammars import access as access_grammar
from grammars import error as error_grammar
from grammars import fpm as fpm_grammar
from grammars import fpm_access as fpm_access_grammar
from grammars import slowlog as slowlog_grammar
from grammars.detect import detect_line
from grammars.plugins import GrammarPlugin
from grammars.lowering import Scanner
from grammars.values import Converter
from grammars.prefix import PREFIX_SCAN_PATTERN, has_prefix, strip_prefix
from grammars.result import ParseError

from processor.core.events import (
    FAILURE_STATUSES, NGINX_ACCESS, NGINX_ERROR, PHP_FPM, PHP_FPM_ACCESS, PHP_FPM_SLOWLOG, DeadLetter, Event,
    Fields, Record,
)

Parse = Callable[[str], "Fields | ParseError"]
Probe = Callable[[str], "tuple[Any, ...] | None"]


class Failed:
    """``healthy_access_block``'s answer for a line that is a 502/504 of the format (one object: ``FAILED``)."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = Failed()
# healthy_access_block's run of lines: (epoch ms, None or FAILED; host; number of lines)
Run = tuple["int | None | Failed", "str | None", int]


@dataclass(frozen=True, slots=True)
class ParseSettings:
    """Access formats by name, and the timezone of logs that write no offset (per log type)."""

    formats: Mapping[str, access_grammar.AccessFormat] = field(default_factory=dict)
    timezone: tzinfo = timezone.utc
    timezones: Mapping[str, tzinfo] = field(default_factory=dict)
    default_host: str = ""
    # learned from a host's access log when no timezone was given (see replay's --timezone auto)
    host_timezones: Mapping[str, tzinfo] = field(default_factory=dict)
    plugins: tuple[GrammarPlugin, ...] = ()


@lru_cache(maxsize=4096)
def _local_ms(dt: datetime, tz: tzinfo) -> int:
    return int(dt.replace(tzinfo=tz).timestamp() * 1000)


@lru_cache(maxsize=4096)
def _aware_ms(dt: datetime) -> int:
    # consecutive lines share their second: the grammars hand back the same datetime, the cache hits
    return int(dt.timestamp() * 1000)


# the event times an incident can carry (`@timestamp` is ISO 8601 with a 4-digit year): a local time at 9999's
# last hours is year 10000 in UTC, one at year 1's first hours is year 0
MIN_TS_MS: Final = int(datetime(1, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
MAX_TS_MS: Final = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp() * 1000)
OUT_OF_RANGE: Final = "entry's time is outside years 1-9999 in UTC"


def in_range(ts_ms: int | None) -> int | None:
    """``ts_ms`` when an incident can carry it, else None."""
    return ts_ms if ts_ms is not None and MIN_TS_MS <= ts_ms <= MAX_TS_MS else None


def event_ts_ms(fields: Fields, tz: tzinfo) -> int | None:
    """Epoch ms of the entry's own time; naive times are read in ``tz``."""
    value = fields.get("time")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return _local_ms(value, tz)
        return _aware_ms(value)
    msec = fields.get("msec")
    if isinstance(msec, (int, float)) and math.isfinite(msec):
        return int(msec * 1000)
    return None


class RecordParser:
    """Parses records of any log type into events; never raises."""

    def __init__(self, settings: ParseSettings) -> None:
        self.settings = settings
        self._formats: dict[str, access_grammar.AccessFormat] = {
            "combined": access_grammar.COMBINED, "main": access_grammar.MAIN,
            "combined_plus": access_grammar.COMBINED_PLUS, **settings.formats,
        }
        # the configured formats first: a custom format often starts like combined, and combined_plus
        # (combined + untyped rest) must only ever be the last resort
        self._detect_formats = (*settings.formats.values(), access_grammar.COMBINED, access_grammar.MAIN,
                                access_grammar.COMBINED_PLUS)
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
            return DeadLetter(record.source, f"internal parser error: {type(exc).__name__}: {exc}", record.text,
                              record.log_type, line_count=record.line_count)

    def healthy_access_line_ms(self, text: str, host: str | None, access_format: str | None) -> int | None:
        """Event time of a healthy NGINX access line, for a caller that needs no ``Event`` of it.

        Not ``None`` only when ``parse(Record(text, …, NGINX_ACCESS, host, access_format))`` would give an
        ``nginx_access`` event of that time whose status is not a failure (``FAILURE_STATUSES``): the same grammar
        matches (its lowered regex and every conversion that may fail, ``FastParser.probe``), no shipper prefix,
        one line. ``None``: ``parse`` decides (failures, other types, dead letters, JSON lines, anything unusual).
        """
        probe = self._probes.get(access_format) or self._access_probe(access_format)
        if "\n" in text or text.startswith("{"):
            return None
        got = probe(text)
        if got is None:
            return None
        status, value = got
        if status in FAILURE_STATUSES or not isinstance(value, datetime) or has_prefix(text):
            return None
        if value is self._last_time:
            return self._last_time_ms
        if value.tzinfo is None:  # the host's timezone applies: not kept
            return in_range(self._local_access_ms(value, host))
        ts_ms = self._last_time_ms = in_range(_aware_ms(value))
        self._last_time = value
        return ts_ms

    def healthy_access_block(self, block: str, n: int, hosts: str | None | Sequence[str | None],
                             access_format: str | None) -> list[Run] | None:
        """``healthy_access_line_ms`` of the ``n`` newline-separated lines of ``block`` (``hosts``: one for all
        lines, or one per line) as runs ``(answer, host, count)`` of consecutive lines with the same answer and
        host, in line order: the epoch ms, ``None``, or ``FAILED`` for a line of the format whose status is a
        failure (a plain access line, no prefix, not blank: ``parse`` gives its event). From one regex pass
        over the block (the format's ``Scanner``; where it gives up, on an empty line or a match across a line
        end, half by half, down to a few lines that answer ``None``); each distinct status and time text is
        converted once. ``None`` when the format has no scanner: ask line by line."""
        scan = self._scanner_for(access_format)
        if scan is None:
            return None
        rows: list[tuple[str, ...] | None] | None = scan.rows(block, n)  # type: ignore[assignment]
        if rows is None:
            rows = _scan_halves(scan, block.split("\n"))
            # a format whose matches run on (combined_plus's untyped rest takes newlines): stop trying
            answered = any(row is not None and not row[-1] for row in rows)
            misses = self._scan_misses[access_format] = self._scan_misses.get(access_format, 0) + (not answered)
            if misses >= 8:
                self._scanners[access_format] = None
        elif access_format in self._scan_misses:
            del self._scan_misses[access_format]
        fixed = hosts is None or isinstance(hosts, str)
        keyed: Iterable[Any] = groupby(rows) if fixed else groupby(zip(rows, hosts))  # type: ignore[arg-type]
        (status_at, time_at), (to_status, to_time) = scan.at, scan.converters
        statuses, times = self._status_answers, self._time_answers
        out: list[Run] = []
        answer: int | None | Failed = None
        host: str | None = None
        count = 0
        for key, run in keyed:
            row, line_host = (key, cast("str | None", hosts)) if fixed else key
            lines = len(list(run))
            if row is None or row[-1]:  # the scan gave up on it, or the grammar does not match it whole
                got: Any = None
            else:
                got = statuses.get(row[status_at], _UNKNOWN)
                if got is _UNKNOWN:
                    got = self._status_answer(to_status, row[status_at])
                if got is True:
                    got = times.get(row[time_at], _UNKNOWN)
                    if got is _UNKNOWN:
                        got = self._time_answer(to_time, row[time_at], line_host)
            if got == answer and line_host == host and count:
                count += lines
                continue
            if count:
                out.append((answer, host, count))
            answer, host, count = got, line_host, lines
        if count:
            out.append((answer, host, count))
        return out

    def _status_answer(self, convert: Converter | None, text: str) -> bool | None | Failed:
        """The status text of a scanned line: ``FAILED`` (a 502/504: the full path whatever its time), ``True``
        (healthy: its time answers) or ``None`` (its conversion fails: ``parse`` decides). Kept."""
        try:
            status = text if convert is None else convert(text)
        except Exception:  # noqa: BLE001 - as the probe: the record would not build
            answer: bool | None | Failed = None
        else:
            answer = FAILED if status in FAILURE_STATUSES else True
        _keep(self._status_answers, text, answer)
        return answer

    def _time_answer(self, convert: Converter | None, text: str, host: str | None) -> int | None:
        """The time text of a scanned healthy line: its epoch ms, or ``None`` (no time: ``parse`` decides).
        Kept, unless the time is naive (the line's host's timezone applies)."""
        try:
            value = text if convert is None else convert(text)
        except Exception:  # noqa: BLE001 - as the probe
            value = None
        if not isinstance(value, datetime):
            answer = None
        elif value.tzinfo is None:
            return in_range(self._local_access_ms(value, host))
        else:
            answer = in_range(_aware_ms(value))
        _keep(self._time_answers, text, answer)
        return answer

    def scans(self, access_format: str | None) -> bool:
        """Whether ``healthy_access_block`` can scan lines of this access format (it has a scanner, and the
        scanner answers)."""
        return self._scanner_for(access_format) is not None

    def _local_access_ms(self, value: datetime, host: str | None) -> int:
        """Epoch ms of an access line's naive time: its host's timezone applies."""
        return _local_ms(value, self._tz_for(host or self.settings.default_host, NGINX_ACCESS))

    def _scanner_for(self, fmt_name: str | None) -> Scanner | None:
        scan = self._scanners.get(fmt_name, _NO_SCAN)
        return self._access_scanner(fmt_name) if scan is _NO_SCAN else scan  # type: ignore[return-value]

    def _access_scanner(self, fmt_name: str | None) -> Scanner | None:
        fmt = self._formats.get(fmt_name or "combined")
        scan: Scanner | None = None
        if fmt is not None and fmt.fast is not None and NGINX_ACCESS not in self._plugins:
            # as healthy_access_line_ms: not a JSON line, no shipper prefix
            scan = fmt.fast.scanner(("status", "time"), r"\{|" + PREFIX_SCAN_PATTERN)
        self._scanners[fmt_name] = scan
        return scan

    def _access_probe(self, fmt_name: str | None) -> Probe:
        fmt = self._formats.get(fmt_name or "combined")
        probe: Probe = _no_probe
        if fmt is not None and fmt.fast is not None and NGINX_ACCESS not in self._plugins:
            probe = fmt.fast.probe(("status", "time"))
        self._probes[fmt_name] = probe
        return probe

    def _tz_for(self, host: str, log_type: str) -> tzinfo:
        tz = self._tz.get((host, log_type))
        if tz is None:
            tz = self._tz[(host, log_type)] = (self.settings.host_timezones.get(host)
                                               or self.settings.timezones.get(log_type, self.settings.timezone))
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
                return DeadLetter(record.source, "unrecognised log line (no grammar matches)", record.text,
                                  None, 1, _context(text, 1), record.line_count)
            log_type, fmt_name = found
        result: Fields | ParseError
        if log_type == NGINX_ACCESS:
            result = self._parse_access(text, fmt_name)
        else:
            parse = self._by_type.get(log_type)
            if parse is None:
                return DeadLetter(record.source, f"unknown log type {log_type!r}", record.text, log_type,
                                  line_count=record.line_count)
            result = parse(text)
        if isinstance(result, ParseError):
            return DeadLetter(record.source, result.reason, record.text, log_type, result.column,
                              result.context(), record.line_count)
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
            return DeadLetter(record.source, "entry has no timestamp to place it in event time", record.text,
                              log_type, line_count=record.line_count)
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


def _scan_halves(scan: Scanner, lines: list[str]) -> list[tuple[str, ...] | None]:
    """``scan.rows`` of a block it gave up on (an empty line, a match across a line end), half by half: the
    lines of the smallest pieces it still gives up on have no row (``None``: each is probed alone)."""
    n = len(lines)
    if n <= 8:
        return [None] * n
    half = n // 2
    out: list[tuple[str, ...] | None] = []
    for part in (lines[:half], lines[half:]):
        rows = scan.rows("\n".join(part), len(part))
        out += rows if rows is not None else _scan_halves(scan, part)
    return out


_NO_SCAN: Final = object()  # _scanners' "not looked up yet"
_UNKNOWN: Final = object()  # healthy_access_block's "not answered yet"


def _keep(answers: dict[str, Any], text: str, answer: Any) -> None:
    if len(answers) >= 4096:  # a bound: a block's texts come again in the next, not after thousands of others
        answers.clear()
    answers[text] = answer


def _no_probe(text: str) -> None:
    return None  # a format without a lowered regex: parse decides


def _strip_each(text: str) -> tuple[Fields, str]:
    lines = text.split("\n")
    first_prefix, first = strip_prefix(lines[0])
    rest = [strip_prefix(line)[1] for line in lines[1:]]
    return first_prefix, "\n".join([first, *rest])


def _context(text: str, column: int) -> str:
    return ParseError("", column, text).context()

