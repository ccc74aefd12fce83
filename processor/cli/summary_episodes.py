"""The closing summary's episode lines: one row per outage episode (``--episodes`` has every record)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.cli.summary import format_duration, printable, table

TOP_EPISODES = 20


def episodes_text(episodes: Sequence[dict[str, Any]]) -> str:
    """The episodes (the last record of each), largest first; empty when there are none."""
    if not episodes:
        return ""
    ordered = sorted(episodes, key=lambda r: (-r["episode"]["count"], r["episode"]["first"], r["episode"]["id"]))
    gap = ordered[0]["episode"].get("gap_s", 60)
    out = [f"episodes: {len(episodes):,} (incidents of one host, cause, pool and upstream less than {gap:g} s apart)"]
    rows = []
    for r in ordered[:TOP_EPISODES]:
        e = r["episode"]
        status = e.get("status") or {}
        hosts = ",".join(e.get("hosts") or ()) or r["host"]["name"] or "-"
        rows.append(
            (
                e["first"][:19].replace("T", " ") + "Z",
                format_duration(e["duration_s"]),
                printable(hosts, 30),
                printable(r["badgateway"]["cause"] or "", 30),
                printable(r["php_fpm"]["pool"] or "-", 30),
                status.get("502", 0),
                status.get("504", 0),
                e["count"],
                e["peak_per_minute"],
            )
        )
    out += table(("first", "lasted", "host", "cause", "pool", "502", "504", "total", "peak/min"), rows)
    if len(ordered) > TOP_EPISODES:
        out.append(f"  … and {len(ordered) - TOP_EPISODES:,} more (--episodes FILE writes them all)")
    return "\n".join(out) + "\n"
