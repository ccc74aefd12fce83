"""The report grouped by episode (#21): bands, the episode table with incidents folded under it, cause × pool,
checked in the page, in Chromium's DOM, and in a screenshot (the bands are drawn, in their causes' colours)."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

from processor.cli.report_episodes import episodes_of, fold, short_fix
from processor.cli.report_html import render_html
from processor.diagnosis import registry
from tests.cli.test_report import INCIDENTS, Dom, incident, run_chromium, stats

# two outages of one pool a quarter of an hour apart, and one of another: three episodes
MANY = (
    [
        incident(f"06:{m:02d}:{s:02d}", 502, "child_crash", "www", f"/p{s % 3}.php")
        for m in (0, 1)
        for s in range(0, 60, 3)
    ]
    + [incident(f"06:15:{s:02d}", 502, "child_crash", "www", "/p.php") for s in range(0, 30, 5)]
    + [incident(f"06:{m:02d}:{s:02d}", 504, "fpm_timeout", "slow", "/slow.php") for m in (2, 3, 4) for s in (7, 37)]
)


def test_episodes_group_and_fold_the_incidents() -> None:
    episodes = episodes_of(MANY)
    got = [(r["badgateway"]["cause"], r["php_fpm"]["pool"], r["episode"]["count"]) for r in episodes]
    assert got == [("child_crash", "www", 40), ("fpm_timeout", "slow", 6), ("child_crash", "www", 6)]
    folded = fold(MANY, episodes)
    assert sorted(len(v) for v in folded.values()) == [6, 6, 40]
    assert sum(len(v) for v in folded.values()) == len(MANY)  # every incident under exactly one episode


def test_page_has_bands_episode_table_and_cause_pool_table() -> None:
    page = render_html(MANY, stats(), "t")
    assert len(re.findall(r'<rect class="band cause-', page)) == 3
    assert page.count('<tr class="episode"') == 3 and page.count('<tr class="folded">') == len(MANY)
    assert "<summary>40 incidents</summary>" in page
    assert '<table id="cause-pool">' in page and "<th>child_crash</th><td>46</td>" in page
    assert "<b>3</b><span>episodes</span>" in page


def test_remediation_is_short_with_details_to_expand() -> None:
    long = (
        "No PHP-FPM pool listens on unix:/x.sock (nginx.conf:118): make fastcgi_pass and the pool's `listen` "
        "name the same socket; pools listen on " + ", ".join(f"/run/p{i}.sock" for i in range(40))
    )
    assert short_fix(long) == "No PHP-FPM pool listens on unix:/x.sock (nginx.conf:118)"
    assert len(short_fix("x" * 500)) == 140
    inc = [
        {
            **incident("05:00:00", 502, "socket_mismatch", None, "/a.php"),
            "badgateway": {"cause": "socket_mismatch", "remediation": long},
        }
    ]
    page = render_html(inc, stats(), "t")
    assert "<details><summary>details</summary><p>" + long.replace("'", "&#x27;") in page


def test_host_column_is_filled() -> None:
    nameless = [{**i, "host": {"name": None}} for i in INCIDENTS]
    page = render_html(nameless, stats(), "t")
    rows = re.findall(r"<tr>.*?</tr>", page.split('<table id="incidents">')[1])[1:]  # (after the header)
    assert len(rows) == len(INCIDENTS) and all('<span class="note">unnamed</span>' in r for r in rows)


def test_episodes_render_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(MANY, stats(), "episodes"), encoding="utf-8")
    seen: list[dict[str, Any]] = []

    class Bands(Dom):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            super().handle_starttag(tag, attrs)
            if tag == "rect" and "band" in (dict(attrs).get("class") or ""):
                seen.append(dict(attrs))

    dom = Bands()
    dom.feed(run_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert "svg#episodes-timeline" in dom.tags and "table#episodes" in dom.tags and "table#cause-pool" in dom.tags
    assert sorted(int(b["data-count"] or 0) for b in seen) == [6, 6, 40]
    assert dom.rows == len(MANY) and dom.body.get("data-js") == "on"


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """A Chromium screenshot (8-bit RGB or RGBA, not interlaced) → width, height, rows of pixel bytes."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    data, pos = b"", 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        if kind == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(data)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def _count(rows: list[bytes], colour: str) -> int:
    rgb = bytes.fromhex(colour[1:])
    return sum(len(re.findall(re.escape(rgb), row)) for row in rows)  # (aligned enough for a solid colour)


def test_episode_bands_show_in_a_screenshot(tmp_path: Path) -> None:
    # the same page with and without its episode sections: the bands add their causes' colours to the picture
    crash, timeout = (registry.cause(c).colour for c in ("child_crash", "fpm_timeout"))
    counts = []
    for name, episodes in (("with", None), ("without", [])):
        page = tmp_path / f"{name}.html"
        page.write_text(render_html(MANY, stats(), "episodes", episodes=episodes), encoding="utf-8")
        shot = tmp_path / f"{name}.png"
        run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars", page.as_uri())
        _, _, rows = _pixels(shot.read_bytes())
        counts.append((_count(rows, crash), _count(rows, timeout)))
    (crash_with, timeout_with), (crash_without, timeout_without) = counts
    assert crash_with > crash_without + 1000 and timeout_with > timeout_without + 500, counts
