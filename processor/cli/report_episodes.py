"""The report's episode sections: a band per episode on a time axis, the episode table with each episode's
incidents folded under it, and a cause × pool table.

The episodes are the ones ``--episodes`` writes (``processor.diagnosis.episodes``, default rules), computed here
from the report's incidents when the run did not keep them. Every value from a log goes through ``html.escape``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from html import escape
from typing import Any

from processor.cli.summary import (
    IncidentView,
    format_duration,
    format_ts,
    incident_cause,
    incident_field,
    incident_pool,
    incident_ts_ms,
)  # fmt: skip
from processor.diagnosis.episode_record import ts_ms_of
from processor.diagnosis.episodes import EpisodeTracker

Episode = dict[str, Any]
MAX_BANDS = 60  # rows of the band chart; the table lists every episode
MAX_FOLDED = 100  # incidents shown under one episode (the JSON Lines output has them all)
SHORT_FIX = 140
_BAND_H, _W, _LEFT, _RIGHT = 14, 960, 230, 16
_SENTENCE = re.compile(r"(?<=[.:;])\s")


def episodes_of(incidents: Sequence[IncidentView]) -> list[Episode]:
    """The last record of every episode the incidents make (default rules), first ones first."""
    tracker = EpisodeTracker()
    for incident in incidents:
        try:
            tracker.add(incident)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # an incident without a time, id or cause (read back from elsewhere) is in no episode
    return latest(tracker.finish())


def latest(records: Sequence[Episode]) -> list[Episode]:
    """One record per ``episode.id``: the one with the highest sequence, ordered by first incident."""
    last: dict[str, Episode] = {}
    for r in records:
        e = r["episode"]
        if e["id"] not in last or last[e["id"]]["episode"]["sequence"] < e["sequence"]:
            last[e["id"]] = r
    return sorted(last.values(), key=lambda r: (r["episode"]["first"], r["episode"]["id"]))


def _key(cause: str | None, pool: str | None, upstream: str | None) -> tuple[str | None, ...]:
    return cause, pool, upstream


def fold(incidents: Sequence[IncidentView], episodes: Sequence[Episode]) -> dict[str, list[IncidentView]]:
    """episode.id → its incidents: same cause, pool and upstream, same host (any listed host when fleet-wide),
    inside its first … last."""
    by_key: dict[tuple[str | None, ...], list[tuple[int, int, Episode]]] = {}
    for r in episodes:
        e = r["episode"]
        by_key.setdefault(
            _key(r["badgateway"]["cause"], r["php_fpm"]["pool"], r["nginx"]["upstream"]["address"]), []
        ).append((ts_ms_of(e["first"]), ts_ms_of(e["last"]), r))
    out: dict[str, list[IncidentView]] = {r["episode"]["id"]: [] for r in episodes}
    for incident in incidents:
        ts = incident_ts_ms(incident)
        host = incident_field(incident, "host", "name")
        upstream = incident_field(incident, "nginx", "upstream", "address")
        for first, last, r in by_key.get(_key(incident_cause(incident), incident_pool(incident), upstream), ()):
            hosts = r["episode"]["hosts"]
            same_host = r["host"]["name"] == host or (r["host"]["name"] is None and (host in hosts or not hosts))
            if ts is not None and first <= ts <= last and same_host:
                out[r["episode"]["id"]].append(incident)
                break
    return out


def short_fix(text: str) -> str:
    """The remediation's first sentence, at most ``SHORT_FIX`` characters."""
    first = _SENTENCE.split(text.strip(), maxsplit=1)[0].rstrip(":;")
    return first if len(first) <= SHORT_FIX else first[: SHORT_FIX - 1].rstrip() + "…"


def bands_svg(episodes: Sequence[Episode], cause_slug: Any) -> str:
    """``<svg id="episodes-timeline">``: one labelled band per episode from its first to its last incident."""
    shown = list(episodes[:MAX_BANDS])
    if not shown:
        return ""
    spans = [(ts_ms_of(r["episode"]["first"]), ts_ms_of(r["episode"]["last"])) for r in shown]
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    width = max(end - start, 1)
    height = _BAND_H * len(shown) + 28
    plot = _W - _LEFT - _RIGHT
    parts = [f'<svg id="episodes-timeline" viewBox="0 0 {_W} {height}" role="img" aria-label="episodes in time">']
    for n, (r, (first, last)) in enumerate(zip(shown, spans)):
        e, y = r["episode"], 4 + n * _BAND_H
        cause, pool = r["badgateway"]["cause"], r["php_fpm"]["pool"] or "-"
        x = _LEFT + plot * (first - start) / width
        w = max(plot * (last - first) / width, 3)
        label = f"{cause} · {pool}" + (f" · {r['host']['name']}" if r["host"]["name"] else "")
        tip = f"{label}: {e['count']:,} failed requests, {format_ts(first)} for {format_duration(e['duration_s'])}"
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 10}" text-anchor="end">{escape(label[:36])}</text>')
        parts.append(
            f'<rect class="band cause-{cause_slug(cause)}" data-episode="{escape(e["id"])}"'
            f' data-count="{e["count"]}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BAND_H - 3}"'
            f' rx="2"><title>{escape(tip)}</title></rect>'
        )
    y0 = height - 22
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y0}" y2="{y0}"/>')
    parts.append(f'<text x="{_LEFT}" y="{y0 + 14}">{escape(format_ts(start))}</text>')
    parts.append(f'<text x="{_W - _RIGHT}" y="{y0 + 14}" text-anchor="end">{escape(format_ts(end))}</text></svg>')
    return "".join(parts)


def _status_split(e: dict[str, Any]) -> str:
    status = e.get("status") or {}
    return " ".join(f'<span class="s{escape(s)}">{n:,}×{escape(s)}</span>' for s, n in sorted(status.items()))


def episodes_table(
    episodes: Sequence[Episode], folded: dict[str, list[IncidentView]], row: Any, cause_slug: Any
) -> str:
    """``<table id="episodes">``: one row per episode, its incidents folded (``<details>``) under it."""
    head = ("cause", "pool", "hosts", "failed", "first", "duration", "remediation")
    parts = ['<table id="episodes"><thead><tr class="head">', *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for r in episodes:
        e = r["episode"]
        cause, fix = r["badgateway"]["cause"], r["badgateway"]["remediation"] or ""
        hosts = ", ".join(e["hosts"]) or r["host"]["name"] or "unnamed"
        more = "".join(f"<li>{escape(line)}</li>" for line in e.get("evidence", ()))
        uris = "".join(f"<li>{u['count']:,} {escape(u['uri'])}</li>" for u in e.get("top_uris", ()))
        details = (
            f"<details><summary>details</summary><p>{escape(fix)}</p>"
            + (f"<p>evidence:</p><ul>{more}</ul>" if more else "")
            + (f"<p>top URIs:</p><ul>{uris}</ul>" if uris else "")
            + f'<p class="note">episode {escape(e["id"])}, peak {e["peak_per_minute"]:,}/min</p></details>'
        )
        cells = [
            f'<span class="swatch cause-{cause_slug(cause)}"></span>{escape(cause)}',
            escape(r["php_fpm"]["pool"] or "-"),
            escape(hosts),
            f"{e['count']:,} {_status_split(e)}",
            escape(e["first"].replace("T", " ")),
            escape(format_duration(e["duration_s"])),
            f"{escape(short_fix(fix))}{details}",
        ]
        parts.append(
            f'<tr class="episode" data-episode="{escape(e["id"])}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
        mine = folded.get(e["id"], [])
        if mine:
            rows = "".join(row(i).replace("<tr>", '<tr class="folded">', 1) for i in mine[:MAX_FOLDED])
            cut = f'<p class="note">the first {MAX_FOLDED} of {len(mine):,}</p>' if len(mine) > MAX_FOLDED else ""
            parts.append(
                f'<tr class="incidents-of"><td colspan="{len(head)}"><details><summary>{len(mine):,}'
                f' incident{"s" if len(mine) != 1 else ""}</summary>{cut}<table class="sub">{rows}</table>'
                "</details></td></tr>"
            )
    parts.append("</tbody></table>")
    return "".join(parts)


def cause_pool_table(incidents: Sequence[IncidentView]) -> str:
    """``<table id="cause-pool">``: failed requests per cause (rows) and pool (columns)."""
    cells = Counter((incident_cause(i), incident_pool(i) or "-") for i in incidents)
    if not cells:
        return ""
    causes = sorted({c for c, _ in cells}, key=lambda c: (-sum(n for (k, _), n in cells.items() if k == c), c))
    pools = sorted({p for _, p in cells}, key=lambda p: (-sum(n for (_, q), n in cells.items() if q == p), p))
    head = "".join(f"<th>{escape(p)}</th>" for p in pools)
    body = "".join(
        f'<tr class="cause-row"><th>{escape(c)}</th>'
        + "".join(f"<td>{cells[(c, p)]:,}</td>" if cells[(c, p)] else "<td></td>" for p in pools)
        + "</tr>"
        for c in causes
    )
    return (
        f'<table id="cause-pool"><thead><tr class="head"><th>cause \\ pool</th>{head}</tr></thead><tbody>{body}'
        "</tbody></table>"
    )


EPISODE_CSS = (
    "h2{font-size:16px;margin:16px 0 8px}.band{stroke:none}"
    "#episodes td{border-bottom:none}#episodes tr.episode td{border-top:1px solid #dde2e8}"
    "#episodes details summary{cursor:pointer;color:#1f5fa8}#episodes table.sub{margin:4px 0 8px}"
    "#cause-pool{width:auto}#cause-pool td{text-align:right}"
)
