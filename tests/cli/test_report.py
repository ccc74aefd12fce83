"""The replay summary and the HTML report, from a hand-built incident list.

The HTML page is also opened in real headless Chromium: the chart must exist in the rendered DOM,
the page's own script must run under its CSP, and hostile log content must stay text.
"""

from __future__ import annotations

import io
import os
import re
import select
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from processor.cli.progress import Progress, render_line
from processor.cli.report import LineCounts, ReplayStats, render_html, summary_text
from processor.cli.report_html import bucket_ms, cause_slug
from processor.cli.summary import IncidentTally

HOSTILE_URI = "/<script>document.title='pwned'</script><img src=x onerror=alert(1)>?q=\x1b[2J"


def ts(hms: str) -> str:
    return f"2026-11-24T{hms}.000Z"


def incident(at: str, status: int, cause: str, pool: str | None, uri: str, *, late: bool = False) -> dict[str, Any]:
    return {
        "@timestamp": ts(at),
        "event": {"id": f"bgw-{at}", "kind": "event", "category": ["web"], "type": ["error"],
                  "dataset": "badgateway.incident", "late": late},
        "http": {"request": {"method": "GET"}, "response": {"status_code": status}},
        "url": {"original": uri},
        "source": {"ip": "203.0.113.7"},
        "host": {"name": "web-1"},
        "badgateway": {"cause": cause, "remediation": f"fix {cause}", "status_inferred": False, "missing_evidence": []},
        "php_fpm": {"pool": pool, "pool_source": "config" if pool else None},
        "nginx": {"upstream": {"address": "unix:/run/php/x.sock"}},
        "evidence": {"access": None, "nginx_error": None, "php_fpm": []},
    }  # fmt: skip


INCIDENTS = [
    incident("05:42:00", 504, "fpm_timeout", "slow", "/slow.php?id=1"),
    incident("05:42:01", 504, "fpm_timeout", "slow", "/slow.php?id=2"),  # same 5 s bucket as the one above
    incident("05:43:10", 504, "fpm_timeout", "slow", "/slow.php"),
    incident("05:42:02", 502, "pool_saturated", "www", "/index.php?page=2"),
    incident("05:44:05", 502, "pool_saturated", "www", "/index.php"),
    incident("05:50:00", 502, "child_crash", "www", "/crash.php", late=True),
    incident("05:45:00", 502, "fpm_down", None, "/index.php?x=1"),
    incident("05:49:59", 502, "socket_permission", "www", HOSTILE_URI),
]


def stats(**overrides: Any) -> ReplayStats:
    s = ReplayStats(bytes_read=2_500_000, elapsed_s=0.5, late=1)
    s.add("logs/access.log", "nginx_access", parsed=900, dead_lettered=7)
    s.add("logs/error.log", "nginx_error", parsed=90, dead_lettered=3)
    s.see_ts(datetime(2026, 11, 24, 5, 0, tzinfo=UTC).timestamp().__int__() * 1000)
    s.see_ts(datetime(2026, 11, 24, 6, 0, tzinfo=UTC).timestamp().__int__() * 1000)
    for key, value in overrides.items():
        setattr(s, key, value)
    return s


def row_cells(text: str, first: str) -> list[str]:
    """The whitespace-split cells of the summary table row starting with `first`."""
    [line] = [ln for ln in text.splitlines() if ln.split()[:1] == [first]]
    return line.split()


# --- summary ----------------------------------------------------------------------------------


def test_stats_add_keeps_the_equation_per_file_and_type() -> None:
    s = stats()
    assert (s.lines_read, s.parsed, s.dead_lettered, s.balanced) == (1000, 990, 10, True)
    assert s.by_type["nginx_error"] == LineCounts(read=93, parsed=90, dead_lettered=3)
    assert s.by_file["logs/access.log"] == LineCounts(read=907, parsed=900, dead_lettered=7)


def test_summary_counts_as_incidents_pass() -> None:
    # the summary needs counts, not the incidents: replay keeps none of them unless --report asks (an outage
    # writes hundreds of thousands), and the tally gives the very same text
    tally = IncidentTally()
    for inc in INCIDENTS:
        tally.add(inc)
    assert summary_text(tally, stats()) == summary_text(INCIDENTS, stats())
    assert summary_text(tally, stats(first_ts_ms=None, last_ts_ms=None)) == summary_text(
        INCIDENTS, stats(first_ts_ms=None, last_ts_ms=None)
    )


def test_summary_numbers() -> None:
    text = summary_text(INCIDENTS, stats())
    assert "lines read 1,000 = parsed 990 + dead-lettered 10\n" in text
    assert "2,000 lines/s" in text and "2.5 MB" in text
    assert "time range: 2026-11-24 05:00:00Z – 2026-11-24 06:00:00Z (1h 0m)" in text
    assert "incidents: 8 (502: 5, 504: 3; 1 late)" in text
    # cause  pool  502  504  total — sorted by count, then by name
    assert row_cells(text, "fpm_timeout") == ["fpm_timeout", "slow", "0", "3", "3"]
    assert row_cells(text, "pool_saturated") == ["pool_saturated", "www", "2", "0", "2"]
    assert row_cells(text, "fpm_down") == ["fpm_down", "-", "1", "0", "1"]
    causes = [ln.split()[0] for ln in text.split("cause")[1].splitlines()[1:6]]
    assert causes == ["fpm_timeout", "pool_saturated", "child_crash", "fpm_down", "socket_permission"]
    uris = text.split("top failing URIs")[1].splitlines()[2:]
    # query strings dropped: /index.php?page=2, /index.php and /index.php?x=1 are one URI
    assert [u.split()[:2] for u in uris[:2]] == [["3", "/index.php"], ["3", "/slow.php"]]
    assert row_cells(text, "logs/access.log") == ["logs/access.log", "907", "900", "7"]


def test_summary_is_safe_for_a_terminal() -> None:
    text = summary_text(INCIDENTS, stats())
    # an escape sequence in a logged URI must not reach the operator's terminal as one
    assert "\x1b" not in text and "\\x1b[2J" not in text  # the query is dropped; check the path part
    text = summary_text([incident("05:00:00", 502, "unknown", None, "/a\x1b[31mred\x07")], stats())
    assert "\x1b" not in text and "\x07" not in text and "/a\\x1b[31mred\\x07" in text


def test_summary_flags_lost_lines_and_handles_no_incidents() -> None:
    text = summary_text([], stats(lines_read=1001))
    assert "lines read 1,001 = parsed 990 + dead-lettered 10   ← MISMATCH" in text
    assert text.rstrip().endswith("no 502/504 incidents found")
    # no event time in the stats: the time range comes from the incidents
    text = summary_text(INCIDENTS, stats(first_ts_ms=None, last_ts_ms=None))
    assert "time range: 2026-11-24 05:42:00Z – 2026-11-24 05:50:00Z (8m 0s)" in text


# --- HTML, as a string ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "span_s, step_s",
    [
        (0, 1),  # a single incident still gets a bar
        (119, 1),  # 120 bars of 1 s is the most we draw
        (120, 5),
        (480, 5),
        (3600, 60),
        (86_400, 1800),
        (10 * 86_400, 3 * 3600),
        (100 * 86_400, 86_400),
        (365 * 86_400, 4 * 86_400),  # past 120 days: whole days, still ≤ 120 bars
    ],
)
def test_bucket_size_follows_the_time_range(span_s: int, step_s: int) -> None:
    assert bucket_ms(span_s * 1000) == step_s * 1000


def expected_bars(incidents: list[dict[str, Any]]) -> set[tuple[int, str]]:
    stamps = [int(datetime.fromisoformat(i["@timestamp"]).timestamp() * 1000) for i in incidents]
    step = bucket_ms(max(stamps) - min(stamps))
    return {(t // step, i["badgateway"]["cause"]) for t, i in zip(stamps, incidents)}


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(INCIDENTS, stats(), "replay <of> web-1")
    assert page.count("<script") == 1  # ours only; the URI's is text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;&lt;img src=x" in page
    assert "<title>replay &lt;of&gt; web-1</title>" in page
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)  # nothing fetched from anywhere
    assert "@import" not in page and "url(" not in page
    assert len(re.findall(r'<rect class="bar cause-', page)) == len(expected_bars(INCIDENTS)) == 7
    assert page.count("<tr>") == 1 + len(INCIDENTS)


def test_html_cuts_the_table_not_the_chart() -> None:
    page = render_html(INCIDENTS, stats(), "t", max_rows=3)
    assert page.count("<tr>") == 1 + 3 and "showing the first 3 of 8 incidents" in page
    assert len(re.findall(r'<rect class="bar ', page)) == 7


def test_html_with_no_incidents_and_odd_causes() -> None:
    assert '<svg id="timeline"' in render_html([], stats(), "t")
    odd = incident("05:00:00", 502, 'x" onmouseover="alert(1)', None, "/")
    page = render_html([odd], stats(), "t")
    assert 'onmouseover="' not in page and f"cause-{cause_slug(odd['badgateway']['cause'])}" in page


# --- HTML, rendered by Chromium ---------------------------------------------------------------


class Dom(HTMLParser):
    """The few things the test reads back from Chromium's serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.body: dict[str, str | None] = {}
        self.rows = 0
        self.title = ""
        self._in: list[str] = []
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag if a.get("id") is None else f"{tag}#{a['id']}")
        if tag == "rect" and "bar" in (a.get("class") or "").split():
            self.bars.append(a)
        if tag == "body":
            self.body = a
        if tag == "tr" and "tbody" in self._in and self._table == "incidents":
            self.rows += 1  # the rows of the table of every incident (the episode table folds them too)
        if tag == "table":
            self._table = a.get("id")
        if tag in ("tbody", "title", "svg"):
            self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in == ["title"]:  # the page title, not the bars' tooltips inside the svg
            self.title += data


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return path


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]  # fmt: skip
    return subprocess.run([chromium(), *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(INCIDENTS, stats(), "badgateway replay — web-1"), encoding="utf-8")
    dom = Dom()
    dom.feed(run_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)

    assert "svg#timeline" in dom.tags
    bars = {(int(b["data-bucket"] or -1), b["data-cause"]) for b in dom.bars}
    assert len(dom.bars) == len(bars) == len(expected_bars(INCIDENTS))
    assert {cause for _, cause in bars} == {i["badgateway"]["cause"] for i in INCIDENTS}
    assert sum(int(b["data-count"] or 0) for b in dom.bars) == len(INCIDENTS)
    assert dom.rows == len(INCIDENTS)
    # our script ran (its CSP hash matches); the hostile URI's script and image did not exist as elements
    assert dom.body.get("data-js") == "on"
    assert dom.title == "badgateway replay — web-1"
    assert dom.tags.count("script") == 1 and "img" not in dom.tags


def test_report_screenshot_is_a_real_image(tmp_path: Path) -> None:
    many = [incident(f"05:{m:02d}:{s:02d}", 502 if (m + s) % 3 else 504, cause, pool, f"/p{m % 7}.php")
            for m in range(0, 60, 2) for s, cause, pool in [(6, "fpm_timeout", "slow"), (17, "pool_saturated", "www"),
                                                            (41, "child_crash", "www")] if (m * s) % 5]  # fmt: skip
    page = tmp_path / "report.html"
    page.write_text(render_html(many + INCIDENTS, stats(), "badgateway replay — web-1"), encoding="utf-8")
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1100", "--hide-scrollbars", page.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1100)
    assert len(data) > 40_000, len(data)  # a blank or error page compresses to a few kB
    if os.environ.get("BADGATEWAY_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["BADGATEWAY_KEEP_SCREENSHOT"])


# --- the progress bar (reporting while the run goes; kept here with the rest of what replay shows) ---


def test_progress_line_text() -> None:
    line = render_line(50_000_000, 200_000_000, 1_000_000, 4.0, width=100)
    assert line == "[" + "#" * 10 + "-" * 30 + "]  25% 50.0 MB/200.0 MB  250,000 lines/s  ETA 0:12"
    assert render_line(3_000, 0, 20, 2.0) == "3.0 kB  20 lines  10 lines/s"  # a pipe: size unknown
    narrow = render_line(1, 2, 3, 1.0, width=40)
    assert len(narrow) < 40 and "[" not in narrow
    assert render_line(0, 10, 0, 0.0).endswith("ETA --:--")


def test_progress_draws_only_on_a_terminal_and_at_most_10_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")  # TERM=dumb would (rightly) turn the bar off
    now = [100.0]
    quiet = io.StringIO()
    Progress(1000, stream=quiet, clock=lambda: now[0]).advance(10, 1)
    assert quiet.getvalue() == ""  # not a TTY: nothing, so piped stderr stays clean

    main_fd, side_fd = os.openpty()  # a real terminal, not a flag pretending to be one
    with os.fdopen(side_fd, "w") as tty:
        bar = Progress(1000, stream=tty, clock=lambda: now[0])
        assert bar.enabled
        with bar:
            for _ in range(50):  # 50 chunks within 0.25 s of clock: at most 3 redraws
                now[0] += 0.005
                bar.advance(20, 100)
        tty.flush()
        out = b""
        # the kernel hands pty output over asynchronously: read until it has been quiet a moment
        while select.select([main_fd], [], [], 0.5)[0]:
            out += os.read(main_fd, 65536)
    os.close(main_fd)
    text = out.decode()
    assert text.count("\r\x1b[K[") == 3
    assert text.endswith("\r\x1b[K")  # closed: the bar is erased for the summary
    assert "860 B/1.0 kB " in text and "lines/s  ETA 0:00" in text
