"""Check a lab run against its own logs: statuses, access-log consistency, and the evidence docs/causes.md names.

Independent of badgateway's parsers on purpose (plain regular expressions), so the lab can vouch for the
logs the diagnosis engine is then tested on. ``verify(OUTDIR)`` re-checks a finished run from its files.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# the causes the lab drives nginx and php-fpm into (socket_missing, upstream_reset and unknown need no scenario;
# protocol_mismatch both ways: fastcgi_pass to an HTTP server, proxy_pass to a pool; invalid_header: header() lines)
CAUSES = (
    "fpm_down",
    "socket_mismatch",
    "socket_permission",
    "tcp_refused",
    "pool_saturated",
    "fpm_timeout",
    "child_crash",
    "too_big_header",
    "protocol_mismatch",
    "invalid_header",
    "nginx_timeout",
    "no_live_upstreams",
    "app_answered",
)

ID_RE = re.compile(r"[?&]id=(lab-\d{4})(?=[&\s\"]|$)")
ERROR_START = re.compile(r"^(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?")
ACCESS_RE = re.compile(r'^(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"(.*)$')
FPM_RE = re.compile(r"^\[(\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2})(?:\.\d+)?\] (\w+): (.*)$")
# at log_level = debug every message gains "pid N, function(), line N: "
FPM_DEBUG_PREFIX = re.compile(r"^pid \d+, \w+\(\), line \d+: ")

RESET_OR_CLOSED = (
    r"(recv\(\) failed \(104: Connection reset by peer\)|upstream prematurely closed connection)"
    r" while reading response header from upstream"
)


@dataclass
class ErrorEntry:
    time: datetime
    level: str
    cid: int | None
    text: str  # the whole entry (continuation lines included)

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]


def read_error_log(path: Path) -> list[ErrorEntry]:
    entries: list[ErrorEntry] = []
    if not path.exists():
        return entries
    for line in path.read_text(errors="replace").splitlines():
        m = ERROR_START.match(line)
        if m:
            entries.append(
                ErrorEntry(
                    datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S"),
                    m.group(2),
                    int(m.group(5)) if m.group(5) else None,
                    line,
                )
            )
        elif entries:
            entries[-1].text += "\n" + line
    return entries


def read_fpm_log(path: Path) -> list[tuple[datetime, str, str]]:
    out: list[tuple[datetime, str, str]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        m = FPM_RE.match(line)
        if m:
            out.append(
                (datetime.strptime(m.group(1), "%d-%b-%Y %H:%M:%S"), m.group(2), FPM_DEBUG_PREFIX.sub("", m.group(3)))
            )
    return out


def read_access(path: Path) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not path.exists():
        return by_id
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.startswith("{"):  # the json-debug variant's escape=json lines
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            request, status, rest = str(obj.get("request", "")), int(obj.get("status", 0)), ""
        else:
            m = ACCESS_RE.match(line)
            if not m:
                continue
            request, status, rest = m.group(4), int(m.group(5)), m.group(9)
        for rid in ID_RE.findall(request):
            by_id[rid].append({"line": n, "status": status, "request": request, "rest": rest, "text": line})
    return by_id


def _local(iso: str | None) -> datetime | None:
    """An ISO UTC timestamp (ground truth) as naive server-local time (how nginx/FPM log)."""
    if not iso:
        return None
    return datetime.fromisoformat(iso).astimezone().replace(tzinfo=None)


def _expected_nginx(r: dict[str, Any]) -> tuple[str, str]:
    """(regex for the error entry, short description) a failed request must leave in error.log."""
    cause, sock = r["cause"], str(r.get("socket"))
    up = r.get("upstream") or ""
    if cause == "fpm_down":
        errno = "2: No such file or directory" if r.get("pool") == "legacy" else "111: Connection refused"
        return (
            rf"connect\(\) to unix:{re.escape(sock)} failed \({errno}\) while connecting to upstream",
            f"connect() to unix socket failed ({errno})",
        )
    if cause == "socket_mismatch":
        return (
            rf"connect\(\) to unix:{re.escape(sock)} failed \(2: No such file or directory\) while connecting",
            "connect() failed (2)",
        )
    if cause == "socket_permission":
        return (
            rf"connect\(\) to unix:{re.escape(sock)} failed \(13: Permission denied\) while connecting",
            "connect() failed (13)",
        )
    if cause == "tcp_refused":
        return (
            r"connect\(\) failed \(111: Connection refused\) while connecting to upstream.*upstream: "
            r"\"fastcgi://127\.0\.0\.1:\d+\"",
            "connect() failed (111) to TCP",
        )
    if cause == "pool_saturated":
        if r["expected_status"] == 502:
            return (
                rf"connect\(\) to unix:{re.escape(sock)} failed \(11: Resource temporarily unavailable\)"
                r" while connecting to upstream",
                "connect() failed (11: EAGAIN)",
            )
        return (
            r"upstream timed out \(110: Connection timed out\) while connecting to upstream.*upstream: "
            rf"\"fastcgi://{re.escape(up)}\"",
            "upstream timed out (110) while connecting",
        )
    if cause in ("fpm_timeout", "child_crash", "upstream_reset"):
        return RESET_OR_CLOSED, "recv() failed (104) / upstream prematurely closed"
    if cause == "too_big_header":
        return (r"upstream sent too big header while reading response header from upstream", "too big header")
    if cause == "protocol_mismatch" and r.get("via") == "proxy_pass":
        # nginx spoke HTTP to a PHP-FPM pool: the pool resets (nginx names the upstream http://ADDR/URI)
        return (
            rf"{RESET_OR_CLOSED}.*upstream: \"http://{re.escape(up)}/",
            "recv() failed (104) / upstream prematurely closed from an http:// upstream",
        )
    if cause == "protocol_mismatch":
        # fastcgi_pass reached an HTTP server: "HTTP/1.1 400 …" read as a FastCGI record, version 'H' (72)
        return (
            r"upstream sent unsupported FastCGI protocol version: 72 while reading response header from upstream"
            rf".*upstream: \"fastcgi://{re.escape(up)}\"",
            "unsupported FastCGI protocol version: 72",
        )
    if cause == "invalid_header":
        return (
            r"upstream sent (?:invalid header: \"[^\n]*\"|invalid status \"[^\"]*\") while reading response header "
            r"from upstream",
            "upstream sent invalid header / invalid status",
        )
    if cause == "nginx_timeout":
        return (
            r"upstream timed out \(110: Connection timed out\) while reading response header from upstream",
            "upstream timed out (110) while reading response header",
        )
    if cause == "no_live_upstreams":
        return (
            r"no live upstreams while connecting to upstream.*upstream: \"fastcgi://billing_backend\"",
            "no live upstreams",
        )
    if cause == "app_answered":
        return (r"(?!)", "no error-log entry at all")
    raise ValueError(cause)


FAILURE_RE = re.compile(
    r"connect\(\) (?:to \S+ )?failed|recv\(\) failed|upstream prematurely closed|"
    r"upstream timed out|too big header|no live upstreams|"
    r"upstream sent (?:unsupported FastCGI|invalid FastCGI|unexpected FastCGI|no valid HTTP|invalid header|"
    r"invalid status|duplicate header)"
)
# the plain HTTP server's access line for a FastCGI request it got: a 400, the binary record escaped, the lab id
# in its QUERY_STRING and REQUEST_URI params
WEB_400_RE = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "\\x01\\x01[^"]*" 400 ')


def verify(out: Path, timeline: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Check the finished run in ``out`` (ground_truth.jsonl against logs/)."""
    gt: list[dict[str, Any]] = [
        json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines() if line.strip()
    ]
    problems: list[str] = []
    logs = out / "logs"
    errors = read_error_log(logs / "error.log")
    fpm_main = read_fpm_log(logs / "php-fpm.log")
    fpm_legacy = read_fpm_log(logs / "php-fpm-legacy.log")
    fpm_reports = read_fpm_log(logs / "php-fpm-reports.log")
    access_logs = sorted({str(r["access_log"]) for r in gt} | {"logs/access_combined.log"})
    access = {log: read_access(out / log) for log in access_logs}
    web_path = logs / "access_web.log"
    web_400 = [
        line
        for line in (web_path.read_text(errors="replace") if web_path.exists() else "").splitlines()
        if WEB_400_RE.match(line)
    ]

    by_id_errors: dict[str, list[ErrorEntry]] = defaultdict(list)
    for e in errors:
        m = re.search(r', request: "([^"]*)"', e.text)
        if m:
            for rid in ID_RE.findall(m.group(1)):
                by_id_errors[rid].append(e)

    # 1. statuses, 2. access logs --------------------------------------------------------------------------
    seen_ids: set[str] = set()
    for r in gt:
        rid = r["id"]
        if rid in seen_ids:
            problems.append(f"{rid}: duplicate id in ground truth")
        seen_ids.add(rid)
        want = r["expected_status"]
        if want == 499:
            if r["observed_status"] is not None:
                problems.append(f"{rid}: the client should have given up, saw {r['observed_status']}")
        elif r["observed_status"] != want:
            problems.append(f"{rid} ({r['cause'] or r['scenario']}): status {r['observed_status']}, expected {want}")
        mine = access[r["access_log"]].get(rid, [])
        other_log = [k for k in access if k != r["access_log"]][0]
        if len(mine) != 1:
            problems.append(f"{rid}: appears {len(mine)} times in {r['access_log']} (expected exactly once)")
        elif mine[0]["status"] != want:
            problems.append(f"{rid}: {r['access_log']} says {mine[0]['status']}, expected {want}")
        if access[other_log].get(rid):
            problems.append(f"{rid}: also appears in {other_log}")
        if mine and f'"{r["method"]} {r["uri"]} HTTP/1.1"' not in mine[0]["text"]:
            problems.append(f"{rid}: access request line differs from ground truth uri {r['uri']!r}")
    for log, ids in access.items():
        for rid in ids:
            if rid not in seen_ids:
                problems.append(f"{log}: id {rid} not in the ground truth")

    # 3. per-cause nginx + FPM evidence -------------------------------------------------------------------
    # every cause of CAUSES in every run; a variant may add others (json-debug: upstream_reset)
    extra = sorted({str(r["cause"]) for r in gt if r["cause"] is not None} - set(CAUSES))
    causes: dict[str, dict[str, Any]] = {
        c: {"requests": 0, "reproduced": 0, "statuses": [], "failed_ids": [], "example": None}
        for c in (*CAUSES, *extra)
    }
    crash_lines = [(t, msg) for t, lvl, msg in fpm_main if "[pool crash]" in msg and "exited on signal" in msg]
    used_crash: set[int] = set()
    for r in gt:
        cause = r["cause"]
        rid = r["id"]
        if cause is None:
            bad = [e.first_line for e in by_id_errors.get(rid, []) if FAILURE_RE.search(e.first_line)]
            if bad:
                problems.append(f"{rid} (no cause): unexpected upstream failure in error.log: {bad[0][:160]}")
            continue
        c = causes[cause]
        c["requests"] += 1
        c["statuses"].append(r["observed_status"])
        regex, desc = _expected_nginx(r)
        entries = by_id_errors.get(rid, [])
        hits = [e for e in entries if re.search(regex, e.text)]
        ok = bool(hits) and r["observed_status"] == r["expected_status"]
        acc = access[r["access_log"]].get(rid, [])
        ok = ok and len(acc) == 1 and acc[0]["status"] == r["expected_status"]
        fpm_ev: list[str] = []
        other_ev: list[str] = []  # the evidence another server logged (access_web.log)
        if cause == "app_answered":
            # the application answered 502/504 itself: nginx must have logged nothing about this request
            hits = []
            ok = (
                r["observed_status"] == r["expected_status"]
                and len(acc) == 1
                and acc[0]["status"] == r["expected_status"]
                and not entries
            )
            if entries:
                problems.append(f"{rid} (app_answered): nginx logged {[e.first_line[:160] for e in entries]}")
        elif not hits:
            problems.append(
                f"{rid} ({cause}): no error.log entry matching {desc}; got "
                f"{[e.first_line[:200] for e in entries] or 'nothing'}"
            )
        failure_entries = [
            e for e in entries if e.level in ("error", "crit", "alert", "emerg") and FAILURE_RE.search(e.first_line)
        ]
        expected_n = 2 if r.get("scenario", "").startswith("both servers") else (0 if cause == "app_answered" else 1)
        if len(failure_entries) != expected_n:
            problems.append(f"{rid} ({cause}): {len(failure_entries)} upstream failure entries, expected {expected_n}")
            ok = False
        if cause == "fpm_timeout":
            pool = r["pool"]
            lines = [
                m
                for _, lvl, m in fpm_main
                if f"[pool {pool}]" in m and "execution timed out" in m and f'"{r["method"]} {r["uri"]}"' in m
            ]
            if not lines:
                problems.append(f"{rid}: no 'execution timed out' line for pool {pool} naming {r['uri']}")
                ok = False
            fpm_ev += lines[:1]
        if cause == "child_crash":
            sent = _local(r["sent_at"])
            sig = r.get("signal")
            match = None
            for i, (t, msg) in enumerate(crash_lines):
                if i in used_crash or sent is None:
                    continue
                if f"exited on signal {sig} " in msg and sent - timedelta(seconds=1) <= t <= sent + timedelta(
                    seconds=3
                ):
                    match = i
                    break
            if match is None:
                problems.append(f"{rid}: no '[pool crash] child … exited on signal {sig}' near {r['sent_at']}")
                ok = False
            else:
                used_crash.add(match)
                fpm_ev.append(crash_lines[match][1])
        if cause == "fpm_down" and r["pool"] == "legacy":
            bye = [(t, m) for t, _, m in fpm_legacy if "exiting, bye-bye!" in m]
            sent = _local(r["sent_at"])
            if not bye or (sent and bye[-1][0] > sent) or fpm_legacy[-1][2] != "exiting, bye-bye!":
                problems.append(
                    f"{rid}: the legacy master log does not end with 'exiting, bye-bye!' before the request"
                )
                ok = False
            else:
                fpm_ev.append(bye[-1][1])
        if cause == "upstream_reset" and r["pool"] == "legacy":
            # the master's stop ended the worker: `Terminating ...`, then the child's SIGTERM exit at DEBUG level
            stop = [m for _, _, m in fpm_legacy if m == "Terminating ..."]
            ended = [
                m
                for _, lvl, m in fpm_legacy
                if lvl == "DEBUG" and "[pool legacy]" in m and "exited on signal 15 (SIGTERM)" in m
            ]
            if not stop or not ended:
                problems.append(f"{rid}: no 'Terminating ...' and DEBUG SIGTERM exit in the legacy master's log")
                ok = False
            fpm_ev += stop[:1] + ended[:1]
        if cause == "fpm_down" and r["pool"] == "reports":
            if any("exiting" in m or "Terminating" in m for _, _, m in fpm_reports):
                problems.append(f"{rid}: the killed reports master logged a shutdown (it should have had no chance)")
                ok = False
        if cause == "protocol_mismatch" and r.get("via") == "fastcgi_pass":
            # the other side: the HTTP server read the FastCGI request as a bad request line and answered 400
            theirs = [line for line in web_400 if re.search(rf"id={rid}(?!\d)", line)]
            if len(theirs) != 1:
                problems.append(f"{rid}: {len(theirs)} 400 lines naming it in logs/access_web.log, expected 1")
                ok = False
            other_ev += theirs[:1]
        if cause == "pool_saturated" and r["expected_status"] == 504:
            fpm_ev += [m for _, _, m in fpm_main if "[pool queue] server reached max_children" in m][:1]
        if ok:
            c["reproduced"] += 1
            if c["example"] is None:
                example: dict[str, Any] = {
                    "id": rid,
                    "uri": r["uri"],
                    "status": r["observed_status"],
                    "access": acc[0]["text"] if acc else None,
                    "nginx_error": [e.text for e in hits][:2],
                    "php_fpm": fpm_ev,
                }
                if other_ev:
                    example["web_access"] = other_ev
                c["example"] = example
        else:
            c["failed_ids"].append(rid)

    not_reproduced = [
        c for c, v in causes.items() if (c in CAUSES and v["requests"] < 3) or v["reproduced"] < v["requests"]
    ]
    for name in not_reproduced:
        problems.append(
            f"cause {name} not reproduced: {causes[name]['reproduced']}/{causes[name]['requests']} "
            f"requests ok (need ≥3, all ok); failed: {causes[name]['failed_ids']}"
        )

    # 4. distractors ---------------------------------------------------------------------------------------
    distractors: dict[str, Any] = {}
    fatal_ids = [r["id"] for r in gt if r["expected_status"] == 500]
    fatal_entries = [
        e
        for rid in fatal_ids
        for e in by_id_errors.get(rid, [])
        if 'FastCGI sent in stderr: "PHP message: PHP Fatal error:' in e.text
    ]
    distractors["php_fatal_500"] = {
        "requests": len(fatal_ids),
        "entries": len(fatal_entries),
        "multi_line": sum(1 for e in fatal_entries if "\n" in e.text),
        "example": fatal_entries[0].text if fatal_entries else None,
    }
    if not fatal_ids or len(fatal_entries) < len(fatal_ids) or not all("\n" in e.text for e in fatal_entries):
        problems.append(
            "PHP fatal distractor: missing or single-line 'FastCGI sent in stderr: \"PHP message: "
            "PHP Fatal error:' entries"
        )
    slow_text = (logs / "slow.log").read_text(errors="replace") if (logs / "slow.log").exists() else ""
    slow_entries = re.findall(r"^\[[^\]]+\]  \[pool (\w+)\] pid (\d+)$", slow_text, re.M)
    too_slow = [m for _, _, m in fpm_main if "executing too slow" in m]
    distractors["slowlog"] = {
        "entries": len(slow_entries),
        "pools": sorted({p for p, _ in slow_entries}),
        "fpm_too_slow_lines": len(too_slow),
    }
    if not any(p == "www" for p, _ in slow_entries) or not any("[pool www]" in m for m in too_slow):
        problems.append("slowlog distractor: no slowlog entry / 'executing too slow' line for pool www")
    said = [m for _, _, m in fpm_main if "said into stderr" in m]
    distractors["catch_workers_output"] = {"lines": len(said), "example": said[0] if said else None}
    if not said:
        problems.append("no 'said into stderr' line in php-fpm.log (catch_workers_output)")
    psu = [
        e.first_line
        for r in gt
        if r["expected_status"] == 404
        for e in by_id_errors.get(r["id"], [])
        if "Primary script unknown" in e.text
    ]
    distractors["primary_script_unknown_404"] = len(psu)
    c499 = [r["id"] for r in gt if r["expected_status"] == 499]
    distractors["client_closed_499"] = len(c499)

    healthy = [r for r in gt if r["expected_status"] == 200]
    pools_healthy = sorted({r["pool"] for r in healthy if r["pool"]})
    return {
        "result": "ok" if not problems else "failed",
        "not_reproduced": not_reproduced,
        "problems": problems,
        "requests": len(gt),
        "statuses": dict(sorted(_count(r["expected_status"] for r in gt).items())),
        "causes": causes,
        "healthy_pools": pools_healthy,
        "distractors": distractors,
        "timeline": timeline or [],
    }


def _count(items: Iterable[Any]) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for i in items:
        out[i] += 1
    return dict(out)


def print_summary(report: dict[str, Any]) -> None:
    print(f"\nlab: {report['requests']} requests, statuses {report['statuses']}, {report.get('duration_s', '?')} s")
    for cause, c in report["causes"].items():
        mark = "FAIL" if cause in report["not_reproduced"] else "ok "
        print(
            f"  [{mark}] {cause:18} {c['reproduced']}/{c['requests']} statuses {sorted(set(map(str, c['statuses'])))}"
        )
    if report["problems"]:
        print("\nlab: PROBLEMS:")
        for p in report["problems"]:
            print(f"  !! {p}")
    if report["not_reproduced"]:
        print(f"\nlab: NOT REPRODUCED: {', '.join(report['not_reproduced'])}")
    print(f"lab: result {report['result']}")
