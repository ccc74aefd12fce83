"""`--report FILE.html`: one self-contained page — a timeline of 502/504 by cause and the incident table.

The chart is inline SVG drawn here in Python: no script, font or stylesheet is fetched, so the page
opens from an air-gapped incident laptop or an email attachment. Every value from a log goes through
`html.escape`; in addition a Content-Security-Policy allows only the page's own script (by hash), so
markup that slipped through escaping still could not run.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from processor.cli.report_episodes import (
    EPISODE_CSS,
    Episode,
    bands_svg,
    cause_pool_table,
    episodes_of,
    episodes_table,
    fold,
)  # fmt: skip
from processor.cli.summary import (
    IncidentView,
    ReplayStats,
    format_ts,
    incident_cause,
    incident_field,
    incident_get,
    incident_pool,
    incident_status,
    incident_ts_ms,
    time_range_ms,
)  # fmt: skip
from processor.diagnosis import registry

# Candidate bucket sizes (seconds): round numbers an operator reads at a glance.
BUCKET_STEPS_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
MAX_BUCKETS = 120  # ~8 px per bar on the 960-wide chart: thinner bars stop being readable
MIN_BUCKETS = 24
MAX_ROWS = 10_000  # beyond this the page gets too heavy to open; the chart still counts everything

# causes read back from an incident file that this build does not know (a newer version's, a typo) get these;
# registered causes bring their own colour (processor.diagnosis.registry)
_EXTRA_COLOURS = ("#a1887f", "#4db6ac", "#f06292", "#9575cd", "#aed581", "#ffb74d")
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 960, 300, 56, 16, 16, 48

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d232a;background:#fafbfc}
h1{font-size:20px;margin:0 0 12px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}.card span{color:#5b6570;font-size:12px}
figure{background:#fff;border:1px solid #dde2e8;border-radius:6px;margin:0 0 16px;padding:12px}
svg{width:100%;height:auto;max-width:1100px;display:block}
svg text{font-size:11px;fill:#5b6570}.grid{stroke:#e6e9ed}.axis{stroke:#8a949e}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:12px}
th,td{border-bottom:1px solid #e6e9ed;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6;position:sticky;top:0}
td.uri{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all;max-width:28em}
td.fix{max-width:36em;color:#3d4650}.s504{color:#b35900}.s502{color:#b00020}
.tag{font-size:10px;background:#fde9c9;border-radius:3px;padding:0 4px;margin-left:4px}
#filter{margin:0 0 8px;padding:4px 8px;width:24em}.note{color:#5b6570}
"""
_JS = (
    "const q=document.getElementById('filter'),rows=document.querySelectorAll('#incidents tbody tr');"
    "q.addEventListener('input',()=>{const t=q.value.toLowerCase();"
    "for(const r of rows){r.hidden=t!==''&&!r.textContent.toLowerCase().includes(t);}});"
    "document.body.dataset.js='on';"
)


def bucket_ms(span_ms: int, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest round bucket (1 s … 1 d, then whole days) giving at most `max_buckets` bars."""
    for step_s in BUCKET_STEPS_S:
        if span_ms // (step_s * 1000) + 1 <= max_buckets:
            return step_s * 1000
    return math.ceil((span_ms + 1) / 86_400_000 / max_buckets) * 86_400_000


def cause_slug(cause: str) -> str:
    """A CSS-safe class suffix for a cause (causes read back from a file are not trusted)."""
    return re.sub(r"[^a-z0-9_-]", "_", cause.lower())[:40] or "unknown"


def _ordered_causes(causes: set[str]) -> list[str]:
    known = [c for c in registry.labels() if c in causes]
    return known + sorted(causes - set(known))


def _colour(cause: str, extra_index: int) -> str:
    if registry.is_registered(cause):
        return registry.cause(cause).colour
    return _EXTRA_COLOURS[extra_index % len(_EXTRA_COLOURS)]


def _nice_step(top: int) -> int:
    """Gridline step (1, 2, 5 × 10^k) giving at most 5 lines up to `top`."""
    magnitude = 1
    while True:
        for m in (1, 2, 5):
            if top <= 5 * m * magnitude:
                return m * magnitude
        magnitude *= 10


def step_label(step_ms: int) -> str:
    """`5 s`, `10 min`, `3 h`, `2 d`: a bucket size as people say it."""
    for unit_ms, unit in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "min")):
        if step_ms >= unit_ms and step_ms % unit_ms == 0:
            return f"{step_ms // unit_ms} {unit}"
    return f"{step_ms / 1000:g} s"


def _tick_label(ts_ms: int, step_ms: int, span_ms: int) -> str:
    t = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if step_ms >= 86_400_000:
        return t.strftime("%Y-%m-%d")
    clock = t.strftime("%H:%M:%S" if step_ms < 60_000 else "%H:%M")
    return t.strftime("%m-%d ") + clock if span_ms >= 86_400_000 else clock


def timeline_svg(incidents: Sequence[IncidentView]) -> tuple[str, list[tuple[str, int]]]:
    """The `<svg id="timeline">` chart (one `rect.bar` per bucket and cause) and the legend entries."""
    stamped = [(ts, i) for i in incidents if (ts := incident_ts_ms(i)) is not None]
    parts = [f'<svg id="timeline" viewBox="0 0 {_W} {_H}" role="img" aria-label="502/504 per time bucket by cause">']
    if not stamped:
        parts.append(f'<text x="{_W // 2}" y="{_H // 2}" text-anchor="middle">no 502/504 incidents</text></svg>')
        return "".join(parts), []
    start_raw, end = min(ts for ts, _ in stamped), max(ts for ts, _ in stamped)
    step = bucket_ms(end - start_raw)
    start = start_raw - start_raw % step  # buckets aligned on the clock, not on the first incident
    n = (end - start) // step + 1
    if n < MIN_BUCKETS:  # a short burst: centre it in a readable axis instead of one page-wide bar
        start -= (MIN_BUCKETS - n) // 2 * step
        n = MIN_BUCKETS
    cells: dict[tuple[int, str], Counter[int | None]] = {}
    for ts, incident in stamped:
        cells.setdefault(((ts - start) // step, incident_cause(incident)), Counter())[incident_status(incident)] += 1
    causes = _ordered_causes({cause for _, cause in cells})
    totals = Counter[int]()
    for (b, _), counter in cells.items():
        totals[b] += sum(counter.values())
    grid = _nice_step(max(totals.values()))
    top = math.ceil(max(totals.values()) / grid) * grid
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM
    bar_w = plot_w / n
    y0 = _TOP + plot_h

    for value in range(0, top + 1, grid):  # gridlines with their count on the y axis
        y = y0 - plot_h * value / top
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value}</text>')
    for b in range(n):
        height_done = 0
        for cause in causes:
            cell = cells.get((b, cause))
            if not cell:
                continue
            count = sum(cell.values())
            x, h = _LEFT + b * bar_w, plot_h * count / top
            y = y0 - plot_h * height_done / top - h
            height_done += count
            tip = (
                f"{format_ts(start + b * step)} +{step_label(step)} · {cause}: {count}"
                f" (502: {cell[502]}, 504: {cell[504]})"
            )
            parts.append(
                f'<rect class="bar cause-{cause_slug(cause)}" data-bucket="{b}" data-cause="{escape(cause)}"'
                f' data-count="{count}" x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}"'
                f' height="{h:.1f}"><title>{escape(tip)}</title></rect>'
            )
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y0}" y2="{y0}"/>')
    label_every = max(1, math.ceil(n / 8))  # ≤ 8 time labels so they never overlap
    for b in range(0, n, label_every):
        x = _LEFT + b * bar_w
        label = _tick_label(start + b * step, step, end - start)
        parts.append(f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + 4}"/>')
        parts.append(f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle">{label}</text>')
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_H - 8}" text-anchor="middle">time (UTC), '
        f"{step_label(step)} per bar</text>"
    )
    parts.append(
        f'<text transform="translate(14 {_TOP + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
        "502/504 per bar</text></svg>"
    )
    by_cause = Counter(incident_cause(i) for _, i in stamped)
    return "".join(parts), [(cause, by_cause[cause]) for cause in causes]


def _row(incident: IncidentView) -> str:
    status = incident_status(incident)
    late = '<span class="tag">late</span>' if incident_get(incident, "event", "late") is True else ""
    cause = incident_cause(incident)
    cells = [
        escape((incident_field(incident, "@timestamp") or "").replace("T", " ")),
        f'<span class="s{status}">{status if status is not None else "?"}</span>{late}',
        escape(incident_field(incident, "http", "request", "method") or ""),
        escape(incident_field(incident, "url", "original") or ""),
        escape(incident_field(incident, "source", "ip") or ""),
        escape(incident_field(incident, "host", "name") or "") or '<span class="note">unnamed</span>',
        f'<span class="swatch cause-{cause_slug(cause)}"></span>{escape(cause)}',
        escape(incident_pool(incident) or ""),
        escape(incident_field(incident, "badgateway", "remediation") or ""),
    ]
    classes = ("", "", "", ' class="uri"', "", "", "", "", ' class="fix"')
    return "<tr>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(classes, cells)) + "</tr>"


def render_html(
    incidents: Sequence[IncidentView],
    stats: ReplayStats,
    title: str,
    *,
    max_rows: int = MAX_ROWS,
    episodes: Sequence[Episode] | None = None,
) -> str:
    """The whole report page as one string: summary cards, timeline chart, legend, a band per episode, the
    episode table (incidents folded under each), the cause × pool table, and the table of every incident.
    ``episodes``: the last record of each (``--episodes``), else grouped here with the default rules."""
    svg, legend = timeline_svg(incidents)
    grouped = list(episodes) if episodes is not None else episodes_of(incidents)
    extra = 0
    colour_css = []
    for cause in _ordered_causes({incident_cause(i) for i in incidents}):
        colour = _colour(cause, extra)
        extra += not registry.is_registered(cause)
        colour_css.append(f".cause-{cause_slug(cause)}{{fill:{colour};background:{colour}}}")
    statuses = Counter(incident_status(i) for i in incidents)
    span = time_range_ms(incidents, stats)
    time_range = f"{format_ts(span[0])} – {format_ts(span[1])}" if span else "–"
    rate = stats.lines_read / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    cards = [
        (f"{len(incidents):,}", "incidents"), (f"{statuses[502]:,}", "502 Bad Gateway"),
        (f"{statuses[504]:,}", "504 Gateway Timeout"),
        (f"{stats.lines_read:,} = {stats.parsed:,} + {stats.dead_lettered:,}", "lines read = parsed + dead-lettered"),
        (time_range, "time range"), (f"{rate:,.0f}", "lines/s"), (f"{len(grouped):,}", "episodes"),
    ]  # fmt: skip
    ordered = sorted(incidents, key=lambda i: incident_ts_ms(i) or 0)
    shown = ordered[:max_rows]
    cut = (
        (
            f'<p class="note">showing the first {len(shown):,} of {len(ordered):,} incidents;'
            " the JSON Lines output has them all</p>"
        )
        if len(shown) < len(ordered)
        else ""
    )
    script_hash = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
    csp = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    head = ("time", "status", "method", "URI", "client", "host", "cause", "pool", "remediation")
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{_CSS}{EPISODE_CSS}{''.join(colour_css)}</style></head><body>",
            f'<h1>{escape(title)}</h1><div class="cards">',
            *(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in cards),
            "</div><figure>",
            svg,
            '<ul class="legend" id="legend">',
            *(f'<li><span class="swatch cause-{cause_slug(c)}"></span>{escape(c)} ({n:,})</li>' for c, n in legend),
            "</ul>",
            bands_svg(grouped, cause_slug),
            "</figure>",
            f"<h2>{len(grouped):,} episode{'s' if len(grouped) != 1 else ''}</h2>",
            episodes_table(grouped, fold(ordered, grouped), _row, cause_slug),
            "<h2>failed requests by cause and pool</h2>",
            cause_pool_table(incidents),
            "<h2>every incident</h2>",
            '<input id="filter" type="search" placeholder="filter rows (cause, pool, URI, client…)">',
            cut,
            '<table id="incidents"><thead><tr>',
            *(f"<th>{h}</th>" for h in head),
            "</tr></thead><tbody>",
            *(_row(i) for i in shown),
            f"</tbody></table><script>{_JS}</script></body></html>\n",
        ]
    )
