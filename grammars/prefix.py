"""Shipper prefixes: what collectors put in front of a log line, recognised and removed.

docker ``--timestamps`` (``2024-05-01T10:00:00.123456789Z ``), docker compose / forego
(``web-1  | ``, ``nginx.1    | ``), Heroku (``2020-11-16T08:47:16.134129+00:00 app[web.1]: ``),
container-portal TSV exports (``2024/11/12 14:08:57<TAB>stderr<TAB>``), syslog wrappers
(RFC 5424, BSD/RFC 3164, journal ``host nginx[123]: ``) and init-script echoes
(``Starting nginx: ``). Prefixes can stack (compose + a timestamp column), so stripping
repeats while something matches. A line without a prefix costs one failed regex match.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Final

from grammars.result import Fields

_PROGRAM: Final = r"(?:nginx|php-fpm[\w.-]*+|php[\d.]*-fpm)"

_PREFIX_SOURCE: Final = (
    r"(?:(?P<docker>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    r"(?:[\w.-]++\[(?P<dyno>[\w.-]+)\]: )?"
    r"|(?P<compose>[\w.-]++) +\| "
    r"|(?P<column>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) \| "
    r"|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\t(?:stdout|stderr)\t"
    r"|<\d{1,3}>1 (?P<rfc5424>\S+) \S+ \S+ \S+ \S+ (?:-|\[.*?\]) "
    r"|(?:<\d{1,3}>)?(?:\w++\.\w++: )?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:[\w.-]++ ){0,2}"
    rf"{_PROGRAM}(?:\[\d+\])?: +"
    rf"|\[SYSLOG\] {_PROGRAM}\[\d+\]: "
    rf"|[\w.-]++ {_PROGRAM}(?:\[\d+\])?: "
    rf"|Starting {_PROGRAM}: )"
)
_PREFIX: Final = re.compile(_PREFIX_SOURCE)
# Where _PREFIX matches, without its groups and arranged to fail fast on a line with no prefix (the alternatives
# that start alike share their start), to embed in another regex: ``(?!…)``, no shipper prefix here. The same
# language at a line's start as _PREFIX (tests/grammars/test_prefix.py checks it on every case and random text).
PREFIX_PATTERN: Final = (
    r"(?:\d{4}(?:-\d\d-\d\d(?:T\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d) (?:[\w.-]++\[[\w.-]+\]: )?"
    r"| \d\d:\d\d:\d\d(?:\.\d+)? \| )"
    r"|/\d\d/\d\d \d\d:\d\d:\d\d\t(?:stdout|stderr)\t)"
    r"|<\d{1,3}>1 \S+ \S+ \S+ \S+ \S+ (?:-|\[.*?\]) "
    r"|(?:<\d{1,3}>)?(?:\w++\.\w++: )?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:[\w.-]++ ){0,2}"
    rf"{_PROGRAM}(?:\[\d+\])?: +"
    rf"|\[SYSLOG\] {_PROGRAM}\[\d+\]: "
    rf"|[\w.-]++ (?: *\| |{_PROGRAM}(?:\[\d+\])?: )"
    rf"|Starting {_PROGRAM}: )"
)
# PREFIX_PATTERN again, giving up at once on a line that starts as an IP address and " - " (nginx's combined and
# main formats): no alternative can match there (each needs a character outside [0-9A-Fa-f.:] before the first
# blank, or something other than "-" after it), and trying them all cost ~0.4 µs per access line in the scan.
PREFIX_SCAN_PATTERN: Final = rf"(?![0-9A-Fa-f.:]++ - )(?:{PREFIX_PATTERN})"


@lru_cache(maxsize=4096)
def _iso_time(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds → aware datetime (microsecond precision)."""
    head, _, frac = text.partition(".")
    offset = "+00:00"
    if text.endswith("Z"):
        frac, head = frac.removesuffix("Z"), head.removesuffix("Z")
    elif frac:
        frac, offset = frac[:-6], frac[-6:]
    else:
        head, offset = head[:-6], head[-6:]
    micro = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{micro}{offset}")


@lru_cache(maxsize=4096)
def _column_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _safe_time(convert: Callable[[str], datetime], text: str) -> datetime | None:
    """A prefix time that matched the shape but is no real time (``…03.000AAA+00:00``): no time, no crash."""
    try:
        return convert(text)
    except ValueError:
        return None


def strip_prefix(line: str) -> tuple[Fields, str]:
    """Remove the shipper prefixes of ``line``: (``{"container", "shipper_time"}``, the log line).

    Unknown text is left alone; a line without a prefix comes back unchanged. Never raises.
    """
    container: str | None = None
    shipper_time: datetime | None = None
    match = _PREFIX.match(line)
    while match is not None:
        groups = match.groupdict()
        if groups["docker"] is not None:
            shipper_time = shipper_time or _safe_time(_iso_time, groups["docker"])
            container = container or groups["dyno"]
        elif groups["compose"] is not None:
            container = container or groups["compose"]
        elif groups["column"] is not None:
            shipper_time = shipper_time or _safe_time(_column_time, groups["column"])
        elif groups["rfc5424"] is not None:
            shipper_time = shipper_time or _safe_time(_iso_time, groups["rfc5424"])
        line = line[match.end() :]
        match = _PREFIX.match(line)
    return {"container": container, "shipper_time": shipper_time}, line


def has_prefix(line: str) -> bool:
    """True when ``line`` starts with a recognised shipper prefix."""
    return _PREFIX.match(line) is not None
