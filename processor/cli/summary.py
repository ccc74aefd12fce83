"""The closing summary of `badgateway replay`: run counters and the terminal text built from them.

Pure functions of the incident records (docs/contracts.md) and a `ReplayStats`; the CLI decides where
the text goes. Log content is hostile, so every value from a log is made printable before it reaches
a terminal (an escape sequence in a URI must not repaint the operator's screen).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from processor.core.errors import escape_controls
from processor.runners.stats import LineCounts, ReplayStats

__all__ = ["LineCounts", "ReplayStats"]  # the run's counters, read by the summary and the report

IncidentView = Mapping[str, Any]

TOP_URIS = 10


# --- reading incident records (tolerant: a record read back from a file may lack parts) ---------


def incident_get(incident: IncidentView, *keys: str) -> Any:
    """A nested value (`incident_get(i, "http", "response", "status_code")`), None where a level is missing."""
    value: Any = incident
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def incident_ts_ms(incident: IncidentView) -> int | None:
    """The incident's `@timestamp` as epoch milliseconds, or None when absent or malformed."""
    text = incident.get("@timestamp")
    if not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def incident_status(incident: IncidentView) -> int | None:
    """502, 504, … from `http.response.status_code`."""
    status = incident_get(incident, "http", "response", "status_code")
    return status if isinstance(status, int) else None


def incident_cause(incident: IncidentView) -> str:
    """`badgateway.cause`, "unknown" when missing."""
    return str(incident_get(incident, "badgateway", "cause") or "unknown")


def incident_pool(incident: IncidentView) -> str | None:
    """`php_fpm.pool`, None when no pool could be resolved."""
    pool = incident_get(incident, "php_fpm", "pool")
    return None if pool is None else str(pool)


def incident_field(incident: IncidentView, *keys: str) -> str | None:
    """Any nested field as text (None stays None)."""
    value = incident_get(incident, *keys)
    return None if value is None else str(value)


def uri_path(uri: str | None) -> str:
    """The URI without its query string: `/a.php?id=1` and `/a.php?id=2` fail for the same reason."""
    if not uri:
        return "(no URI)"
    return uri.split("?", 1)[0] or "/"


# --- formatting ------------------------------------------------------------------------------


def printable(text: str, limit: int = 100) -> str:
    """`text` safe for a terminal: control characters shown as `\\xNN`, cut to `limit` characters."""
    safe = escape_controls(text)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def format_ts(ts_ms: int) -> str:
    """UTC, second precision: the resolution an operator scans a summary at. A time outside years 1–9999
    (a log line from a broken or hostile clock) is shown as epoch seconds rather than failing the summary."""
    try:
        when = datetime.fromtimestamp(ts_ms // 1000, tz=UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):
        return f"{ts_ms // 1000} s after the epoch (outside years 1-9999)"
    return when.isoformat(" ", "seconds") + "Z"  # four-digit years, unlike strftime's %Y before 1000


def format_duration(seconds: float) -> str:
    """`2d 3h`, `1h 5m`, `4m 10s`, `12.3s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Aligned text columns, indented two spaces; int columns right-aligned."""
    rows = list(rows)
    right = [bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(header))]
    cells = [list(header), *([f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  " + "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()
        for row in cells
    ]


def time_range_ms(incidents: Sequence[IncidentView], stats: ReplayStats) -> tuple[int, int] | None:
    """First and last event time of the run; the incidents' own range when the stats have none."""
    if stats.first_ts_ms is not None and stats.last_ts_ms is not None:
        return stats.first_ts_ms, stats.last_ts_ms
    stamps = [ts for ts in map(incident_ts_ms, incidents) if ts is not None]
    return (min(stamps), max(stamps)) if stamps else None


@dataclass
class IncidentTally:
    """What the summary reads of the incidents, counted as they pass: its memory follows the causes, pools and
    URI paths seen, not the incidents (an outage writes hundreds of thousands)."""

    count: int = 0
    statuses: Counter[int | None] = field(default_factory=Counter)
    by_cause_pool: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_status: dict[tuple[str, str], Counter[int | None]] = field(default_factory=dict)
    uris: Counter[str] = field(default_factory=Counter)
    # `@timestamp` texts as the incidents write them (one ISO form, so text order is time order): parsed once,
    # at the end, not per incident
    first_stamp: str | None = None
    last_stamp: str | None = None

    @classmethod
    def of(cls, incidents: Iterable[IncidentView]) -> IncidentTally:
        tally = cls()
        for incident in incidents:
            tally.add(incident)
        return tally

    def add(self, incident: IncidentView) -> None:
        self.count += 1
        status = incident_status(incident)
        self.statuses[status] += 1
        key = (incident_cause(incident), incident_pool(incident) or "-")
        self.by_cause_pool[key] += 1
        by_status = self.by_status.get(key)
        if by_status is None:
            by_status = self.by_status[key] = Counter()
        by_status[status] += 1
        self.uris[uri_path(incident_field(incident, "url", "original"))] += 1
        stamp = incident.get("@timestamp")
        if isinstance(stamp, str):
            if self.first_stamp is None or stamp < self.first_stamp:
                self.first_stamp = stamp
            if self.last_stamp is None or stamp > self.last_stamp:
                self.last_stamp = stamp

    @property
    def first_ts_ms(self) -> int | None:
        return incident_ts_ms({"@timestamp": self.first_stamp})

    @property
    def last_ts_ms(self) -> int | None:
        return incident_ts_ms({"@timestamp": self.last_stamp})


def summary_text(incidents: Sequence[IncidentView] | IncidentTally, stats: ReplayStats) -> str:
    """The closing terminal summary: speed, the line equation, time range, incidents by cause and pool,
    and the top failing URIs."""
    rate = stats.lines_read / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    check = "" if stats.balanced else "   ← MISMATCH: lines were lost, please report this"
    out = [
        f"read {stats.lines_read:,} lines ({stats.bytes_read / 1e6:,.1f} MB) in {format_duration(stats.elapsed_s)}"
        f" — {rate:,.0f} lines/s",
        f"lines read {stats.lines_read:,} = parsed {stats.parsed:,} + dead-lettered {stats.dead_lettered:,}{check}",
    ]
    tally = incidents if isinstance(incidents, IncidentTally) else IncidentTally.of(incidents)
    first, last = (
        (stats.first_ts_ms, stats.last_ts_ms)
        if stats.first_ts_ms is not None
        else (tally.first_ts_ms, tally.last_ts_ms)
    )
    if first is not None and last is not None:
        out.append(f"time range: {format_ts(first)} – {format_ts(last)} ({format_duration((last - first) / 1000)})")
    if stats.by_type:
        types = ", ".join(f"{printable(t, 40)} {c.read:,}" for t, c in sorted(stats.by_type.items()))
        out.append(f"by log type: {types}")
    out += requests_line(incidents if isinstance(incidents, IncidentTally) else IncidentTally.of(incidents), stats)
    if stats.dead_lettered:
        worst = sorted(stats.by_file.items(), key=lambda kv: -kv[1].dead_lettered)[:5]
        dead_rows = [(printable(name, 60), c.read, c.parsed, c.dead_lettered) for name, c in worst if c.dead_lettered]
        out += ["", "dead letters by file (see --dead-letter for each line):"]
        out += table(("file", "read", "parsed", "dead"), dead_rows)

    out.append("")
    if not tally.count:
        out.append("no 502/504 incidents found")
        return "\n".join(out) + "\n"
    split = ", ".join(
        f"{s}: {n:,}" for s, n in sorted(tally.statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    )
    late = f"; {stats.late:,} late" if stats.late else ""
    out.append(f"incidents: {tally.count:,} ({split}{late})")

    by_cause_pool, by_status = tally.by_cause_pool, tally.by_status
    rows = [
        (printable(cause, 30), printable(pool, 30), by_status[(cause, pool)][502], by_status[(cause, pool)][504], n)
        for (cause, pool), n in sorted(by_cause_pool.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    out += table(("cause", "pool", "502", "504", "total"), rows)

    out += ["", f"top failing URIs (query strings dropped, top {TOP_URIS}):"]
    top = sorted(tally.uris.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_URIS]
    out += table(("count", "uri"), [(n, printable(u)) for u, n in top])
    return "\n".join(out) + "\n"


# --- what GoAccess's first screen says and what the run could not know (kept apart: summary_text calls them) ---


def requests_line(tally: IncidentTally, stats: ReplayStats) -> list[str]:
    """Requests seen in access logs and the share that failed: the first number an operator compares."""
    access = stats.by_type.get("nginx_access")
    if access is None or not access.read:
        return []
    share = 100 * tally.count / access.read
    return [f"requests: {access.read:,} access lines, {tally.count:,} failed with 502/504 ({share:.1f} %)"]


# causes whose name says "the configs would have told"; what passing them turns them into
_NEEDS_FPM_CONF = {"socket_missing": "could be fpm_down or socket_mismatch"}


def missing_knowledge(tally: IncidentTally, stats: ReplayStats, *, nginx_conf: bool, fpm_conf: bool) -> list[str]:
    """What the run did not know and what it cost, one line each: a config not given, a log not read."""
    if not tally.count:
        return []
    out: list[str] = []
    by_cause: Counter[str] = Counter()
    unpooled = 0
    for (cause, pool), n in tally.by_cause_pool.items():
        by_cause[cause] += n
        unpooled += n if pool == "-" else 0
    if not fpm_conf:
        for cause, what in _NEEDS_FPM_CONF.items():
            if by_cause[cause]:
                out.append(f"{by_cause[cause]:,} {cause} {what}: pass --fpm-conf (the PHP-FPM masters' configs)")
        if unpooled:
            out.append(f"{unpooled:,} incidents have no pool: --fpm-conf maps each socket and port to its pool")
    if not nginx_conf and stats.by_type.get("nginx_access") and stats.by_type["nginx_access"].dead_lettered:
        out.append(
            f"{stats.by_type['nginx_access'].dead_lettered:,} access lines did not parse: --nginx-conf "
            "(or --log-format) gives their log_format"
        )
    if "nginx_error" not in stats.by_type:
        out.append(
            f"no NGINX error log was read: {tally.count:,} incidents have no cause but the status "
            "(pass the error log too)"
        )
    elif not any(t.startswith("php_fpm") for t in stats.by_type):
        told = sum(by_cause[c] for c in ("upstream_reset", "socket_missing"))
        if told:
            out.append(
                f"no PHP-FPM log was read: {told:,} upstream_reset/socket_missing could be fpm_timeout, "
                "child_crash or fpm_down (pass the PHP-FPM log too)"
            )
    return out
