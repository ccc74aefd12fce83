"""The healthy-access fast path: a healthy NGINX access line's event time without building its ``Event``.

Most lines of an access log are healthy (not a 502/504): the join only moves its clocks for them. ``HealthyAccess``
(mixed into ``RecordParser``, processor/core/parse.py) answers, for one line (``healthy_access_line_ms``) or a
block of lines in one regex pass (``healthy_access_block``), the epoch ms a full ``parse`` would give, or says
that ``parse`` must decide (a failure, a prefix, JSON, anything unusual). Same answers as ``parse``, tested
(tests/core/test_healthy_fast_path.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from itertools import groupby
from typing import TYPE_CHECKING, Any, Final, cast

from grammars.plugins import GrammarPlugin
from grammars.prefix import PREFIX_SCAN_PATTERN, has_prefix
from grammars.scanner import Scanner
from grammars.values import Converter
from processor.core.events import FAILURE_STATUSES, NGINX_ACCESS
from processor.core.timefmt import aware_ms, in_range, local_ms

if TYPE_CHECKING:
    from grammars.access import AccessFormat
    from processor.core.parse import ParseSettings

Probe = Callable[[str], "tuple[Any, ...] | None"]


class Failed:
    """``healthy_access_block``'s answer for a line that is a 502/504 of the format (one object: ``FAILED``)."""

    def __repr__(self) -> str:
        return "FAILED"


FAILED: Final = Failed()
# healthy_access_block's run of lines: (epoch ms, None or FAILED; host; number of lines)
Run = tuple["int | None | Failed", "str | None", int]


class HealthyAccess:
    """The fast path's methods and caches; ``RecordParser`` sets the state declared here."""

    settings: ParseSettings
    _formats: dict[str, AccessFormat]
    _plugins: dict[str, GrammarPlugin]
    # healthy_access_line_ms: the (status, time) probe of each access format named by records (None: no probe)
    _probes: dict[str | None, Probe]
    _scanners: dict[str | None, Scanner | None]  # healthy_access_block's, by format name
    # healthy_access_block's answers by status text and by (aware) time text
    _status_answers: dict[str, bool | None | Failed]
    _time_answers: dict[str, int | None]
    _scan_misses: dict[str | None, int]  # blocks in a row where the scan answered for no line
    _last_time: datetime | None  # consecutive lines share their second: its epoch ms, kept
    _last_time_ms: int | None

    def _tz_for(self, host: str, log_type: str) -> tzinfo:
        raise NotImplementedError  # RecordParser's

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
        ts_ms = self._last_time_ms = in_range(aware_ms(value))
        self._last_time = value
        return ts_ms

    def healthy_access_block(
        self, block: str, n: int, hosts: str | None | Sequence[str | None], access_format: str | None
    ) -> list[Run] | None:
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
            answer = in_range(aware_ms(value))
        _keep(self._time_answers, text, answer)
        return answer

    def scans(self, access_format: str | None) -> bool:
        """Whether ``healthy_access_block`` can scan lines of this access format (it has a scanner, and the
        scanner answers)."""
        return self._scanner_for(access_format) is not None

    def _local_access_ms(self, value: datetime, host: str | None) -> int:
        """Epoch ms of an access line's naive time: its host's timezone applies."""
        return local_ms(value, self._tz_for(host or self.settings.default_host, NGINX_ACCESS))

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
