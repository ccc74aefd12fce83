"""The 502 lab against real nginx + php-fpm: every cause of docs/causes.md reproduced, ground truth exact, evidence real.

These checks read the logs with their own regular expressions (not badgateway's parsers, not lab.verify), so
they vouch for the logs the diagnosis engine is tested on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(400)]

CAUSE_STATUSES = {
    "fpm_down": {502},
    "socket_mismatch": {502},
    "socket_permission": {502},
    "tcp_refused": {502},
    "pool_saturated": {502, 504},
    "fpm_timeout": {502},
    "child_crash": {502},
    "too_big_header": {502},
    "protocol_mismatch": {502},  # fastcgi_pass to an HTTP server (version 72), proxy_pass to a pool (a reset)
    "invalid_header": {502},  # header('Status: abc'), header('X-Trace a b')
    "nginx_timeout": {504},
    "no_live_upstreams": {502},
    "app_answered": {502, 504},  # the application answered 502/504 itself: no error-log entry
}
GT_KEYS = {
    "id",
    "method",
    "uri",
    "location",
    "expected_status",
    "observed_status",
    "cause",
    "pool",
    "socket",
    "upstream",
    "server",
    "access_log",
    "scenario",
    "sent_at",
    "elapsed_s",
}
LOG_TYPES = {"nginx_access", "nginx_error", "php_fpm", "php_fpm_slowlog", "php_fpm_access"}

ID_IN = re.compile(r"[?&]id=(lab-\d{4})\b")
ERR_START = re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(\w+)\] \d+#\d+: ")
ACCESS_LAB = re.compile(
    r'^127\.0\.0\.1 - - \[[^\]]+\] "([^"]*)" (\d{3}) \d+ "-" "[^"]*" rt=[\d.]+ ua="([^"]*)" '
    r'us="([^"]*)" urt="([^"]*)" cid=(\d+)$'
)
ACCESS_COMBINED = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "([^"]*)" (\d{3}) \d+ "-" "[^"]*"$')
FAILURE = re.compile(
    r"connect\(\) (?:to \S+ )?failed|recv\(\) failed|upstream prematurely closed|"
    r"upstream timed out|too big header|no live upstreams|"
    r"upstream sent (?:unsupported FastCGI|invalid FastCGI|unexpected FastCGI|no valid HTTP|invalid header|"
    r"invalid status|duplicate header)"
)
# the plain HTTP server (web.test) logs each FastCGI request it got as a 400, the binary record escaped by nginx
# (FastCGI version 1, BEGIN_REQUEST, request id 1; the params follow, the lab id in QUERY_STRING and REQUEST_URI)
ACCESS_WEB_400 = re.compile(
    r'^127\.0\.0\.1 - - \[[^\]]+\] "\\x01\\x01\\x00\\x01[^"]*QUERY_STRINGid=(lab-\d{4})[^"]*'
    r'REQUEST_URI/orders/[^"?]*\?id=\1[^"]*" 400 \d+ "-" "-"$'
)


# ------------------------------------------------------------------------------------------------ helpers
def ground_truth(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines() if line.strip()]


def error_entries(out: Path) -> list[tuple[str, str]]:
    """(level, whole entry) of logs/error.log; continuation lines (PHP stack traces) joined with \\n."""
    entries: list[list[str]] = []
    for line in (out / "logs" / "error.log").read_text().splitlines():
        m = ERR_START.match(line)
        if m:
            entries.append([m.group(1), line])
        elif entries:
            entries[-1][1] += "\n" + line
    return [(lvl, text) for lvl, text in entries]


def errors_by_id(out: Path) -> dict[str, list[tuple[str, str]]]:
    by_id: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for lvl, text in error_entries(out):
        m = re.search(r', request: "([^"]*)"', text)
        if m:
            for rid in ID_IN.findall(m.group(1)):
                by_id[rid].append((lvl, text))
    return by_id


def fpm_lines(out: Path, name: str = "php-fpm.log") -> list[str]:
    return (out / "logs" / name).read_text().splitlines()


# ------------------------------------------------------------------------------------------------ tests
def test_lab_run_succeeds(lab_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, proc = lab_run
    assert proc.returncode == 0, f"lab failed ({out}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    report = json.loads((out / "lab_report.json").read_text())
    assert report["result"] == "ok", report["problems"]
    assert report["not_reproduced"] == []
    assert report["duration_s"] < 120


def test_every_cause_reproduced_with_its_status(lab_outdir: Path) -> None:
    gt = ground_truth(lab_outdir)
    by_cause: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in gt:
        if r["cause"]:
            by_cause[r["cause"]].append(r)
    assert set(by_cause) == set(CAUSE_STATUSES), "a cause label outside docs/causes.md's table, or one missing"
    for cause, wanted in CAUSE_STATUSES.items():
        reqs = by_cause[cause]
        assert len(reqs) >= 3, f"{cause}: only {len(reqs)} requests"
        wrong = [
            (r["id"], r["observed_status"], r["expected_status"])
            for r in reqs
            if r["observed_status"] != r["expected_status"]
        ]
        assert not wrong, f"{cause}: observed != expected: {wrong}"
        assert {r["observed_status"] for r in reqs} == wanted, cause
    # the variants the issue asks for
    assert {r["pool"] for r in by_cause["fpm_down"]} == {"legacy", "reports"}  # stopped cleanly + SIGKILLed
    assert {r.get("signal") for r in by_cause["child_crash"]} == {11, 9, 6}  # SIGSEGV, SIGKILL, SIGABRT
    assert sum(1 for r in by_cause["pool_saturated"] if r["observed_status"] == 502) >= 3  # unix EAGAIN
    assert sum(1 for r in by_cause["pool_saturated"] if r["observed_status"] == 504) >= 3  # TCP connect timeout
    # protocol_mismatch both ways, on both servers; invalid_header from both scripts, on a unix and a TCP pool
    assert Counter(r["via"] for r in by_cause["protocol_mismatch"]) == {"fastcgi_pass": 3, "proxy_pass": 2}
    assert {r["server"] for r in by_cause["protocol_mismatch"]} == {"lab.test", "legacy.test"}
    assert {r["uri"].split("?")[0].rsplit("/", 1)[1] for r in by_cause["invalid_header"]} == {
        "badstatus.php",
        "nocolon.php",
    }
    assert {r["pool"] for r in by_cause["invalid_header"]} == {"www", "api"}
    # healthy traffic and distractors too
    statuses = Counter(r["observed_status"] for r in gt if r["cause"] is None)
    assert statuses[200] >= 20 and statuses[500] >= 2 and statuses[404] >= 2
    assert all(r["observed_status"] == r["expected_status"] for r in gt if r["expected_status"] != 499)


def test_ground_truth_is_well_formed(lab_outdir: Path) -> None:
    gt = ground_truth(lab_outdir)
    manifest = json.loads((lab_outdir / "manifest.json").read_text())
    pools = {p["name"]: p for p in manifest["pools"]}
    ids = [r["id"] for r in gt]
    assert len(ids) == len(set(ids))
    for r in gt:
        assert GT_KEYS <= set(r), r
        assert ID_IN.search(r["uri"]).group(1) == r["id"]  # type: ignore[union-attr]
        assert r["uri"].split("?")[1].startswith(f"id={r['id']}")
        if r["cause"] is None:
            assert r["expected_status"] not in (502, 504), r
        else:
            assert r["expected_status"] in (502, 504), r
        if r["pool"] is not None:
            assert r["pool"] in pools, r
            assert r["upstream"] == (
                f"unix:{pools[r['pool']]['listen']}"
                if pools[r["pool"]]["listen"].startswith("/")
                else pools[r["pool"]]["listen"]
            ), r
        if r["upstream"] and r["upstream"].startswith("unix:"):
            assert r["socket"] == r["upstream"][5:]
        else:
            assert r["socket"] is None
    # no real pool behind these: the ground truth says so
    for r in gt:
        if r["cause"] in ("socket_mismatch", "tcp_refused", "no_live_upstreams"):
            assert r["pool"] is None, r
        if r["cause"] == "socket_mismatch":
            assert r["socket"] and not any(p["listen"] == r["socket"] for p in pools.values())
        # fastcgi_pass to the plain HTTP server: no pool there; proxy_pass to the api pool's address
        if r["cause"] == "protocol_mismatch" and r["via"] == "fastcgi_pass":
            assert (r["pool"], r["upstream"]) == (None, f"127.0.0.1:{manifest['ports']['web']}"), r
        if r["cause"] == "protocol_mismatch" and r["via"] == "proxy_pass":
            assert (r["pool"], r["upstream"]) == ("api", pools["api"]["listen"]), r


def test_ground_truth_matches_the_access_logs(lab_outdir: Path) -> None:
    gt = {r["id"]: r for r in ground_truth(lab_outdir)}
    seen: dict[str, list[tuple[str, str, int, str | None]]] = defaultdict(list)
    for log, rx in (("logs/access.log", ACCESS_LAB), ("logs/access_combined.log", ACCESS_COMBINED)):
        lines = (lab_outdir / log).read_text().splitlines()
        assert lines, log
        for line in lines:
            m = rx.match(line)
            assert m, f"{log}: unexpected line shape: {line}"
            ids = ID_IN.findall(m.group(1))
            assert len(ids) == 1, line
            seen[ids[0]].append((log, m.group(1), int(m.group(2)), m.group(3) if log == "logs/access.log" else None))
    assert set(seen) == set(gt), f"ids only in logs: {set(seen) - set(gt)}; only in truth: {set(gt) - set(seen)}"
    for rid, r in gt.items():
        assert len(seen[rid]) == 1, f"{rid} appears {len(seen[rid])} times: {seen[rid]}"
        log, request, status, ua = seen[rid][0]
        assert log == r["access_log"], rid
        assert request == f"{r['method']} {r['uri']} HTTP/1.1", rid
        assert status == r["expected_status"], f"{rid}: access log {status}, expected {r['expected_status']}"
        if ua is None or r["upstream"] is None:
            continue
        # $upstream_addr names what nginx really contacted
        if r["cause"] == "no_live_upstreams":
            assert ua == r["upstream"], rid  # the group name
        elif r["upstream"] == "billing_backend":
            assert len(ua.split(", ")) == 2 and all(a.startswith("127.0.0.1:") for a in ua.split(", ")), rid
        else:
            assert ua == r["upstream"], f"{rid}: ua={ua!r} != {r['upstream']!r}"


def test_the_evidence_is_in_the_logs(lab_outdir: Path) -> None:
    gt = ground_truth(lab_outdir)
    by_id = errors_by_id(lab_outdir)
    fpm = fpm_lines(lab_outdir)
    manifest = json.loads((lab_outdir / "manifest.json").read_text())
    pools = {p["name"]: p["listen"] for p in manifest["pools"]}

    def one(rid: str, pattern: str, level: str) -> str:
        hits = [text for lvl, text in by_id.get(rid, []) if re.search(pattern, text)]
        assert hits, f"{rid}: no error.log entry /{pattern}/; got {by_id.get(rid)}"
        assert any(lvl == level for lvl, text in by_id[rid] if re.search(pattern, text)), (rid, level)
        return hits[0]

    for r in gt:
        rid, cause, sock = r["id"], r["cause"], r["socket"]
        if cause is None:
            failures = [t for _, t in by_id.get(rid, []) if FAILURE.search(t.split("\n")[0])]
            assert not failures, f"{rid} ({r['scenario']}) has upstream failures: {failures}"
            continue
        if cause == "app_answered":
            assert not by_id.get(rid), f"{rid}: the app's own 502/504 must leave no error-log entry: {by_id[rid]}"
            continue
        failures = [t for lvl, t in by_id[rid] if lvl in ("error", "crit") and FAILURE.search(t)]
        assert len(failures) == (2 if r["upstream"] == "billing_backend" and cause == "tcp_refused" else 1), rid
        if cause == "fpm_down" and r["pool"] == "legacy":
            one(
                rid,
                rf"connect\(\) to unix:{re.escape(sock)} failed \(2: No such file or directory\) while "
                r"connecting to upstream",
                "crit",
            )
        elif cause == "fpm_down":
            one(
                rid,
                rf"connect\(\) to unix:{re.escape(sock)} failed \(111: Connection refused\) while connecting "
                r"to upstream",
                "error",
            )
        elif cause == "socket_mismatch":
            one(rid, rf"connect\(\) to unix:{re.escape(sock)} failed \(2: No such file or directory\)", "crit")
        elif cause == "socket_permission":
            one(rid, rf"connect\(\) to unix:{re.escape(sock)} failed \(13: Permission denied\)", "crit")
        elif cause == "tcp_refused":
            one(
                rid,
                r"connect\(\) failed \(111: Connection refused\) while connecting to upstream, .*"
                r"upstream: \"fastcgi://127\.0\.0\.1:\d+\"",
                "error",
            )
        elif cause == "pool_saturated" and r["expected_status"] == 502:
            one(rid, rf"connect\(\) to unix:{re.escape(sock)} failed \(11: Resource temporarily unavailable\)", "error")
        elif cause == "pool_saturated":
            one(
                rid,
                r"upstream timed out \(110: Connection timed out\) while connecting to upstream, .*upstream: "
                rf"\"fastcgi://{re.escape(pools['queue'])}\"",
                "error",
            )
        elif cause in ("fpm_timeout", "child_crash"):
            one(
                rid,
                r"(recv\(\) failed \(104: Connection reset by peer\)|upstream prematurely closed connection) "
                r"while reading response header from upstream",
                "error",
            )
        elif cause == "too_big_header":
            one(rid, r"upstream sent too big header while reading response header from upstream", "error")
        elif cause == "protocol_mismatch" and r["via"] == "fastcgi_pass":
            one(
                rid,
                r"upstream sent unsupported FastCGI protocol version: 72 while reading response header from upstream,"
                rf" .*upstream: \"fastcgi://{re.escape(r['upstream'])}\"",
                "error",
            )
        elif cause == "protocol_mismatch":
            one(
                rid,
                r"(recv\(\) failed \(104: Connection reset by peer\)|upstream prematurely closed connection) "
                rf"while reading response header from upstream, .*upstream: \"http://{re.escape(pools['api'])}/proxy/",
                "error",
            )
        elif cause == "invalid_header":
            script = r["uri"].split("?")[0].rsplit("/", 1)[1]
            said = {"badstatus.php": r'invalid status "abc"', "nocolon.php": r'invalid header: "X-Trace\\x20\.\.\."'}
            one(rid, rf"upstream sent {said[script]} while reading response header from upstream", "error")
        elif cause == "nginx_timeout":
            one(rid, r"upstream timed out \(110: Connection timed out\) while reading response header", "error")
        elif cause == "no_live_upstreams":
            one(
                rid,
                r"no live upstreams while connecting to upstream, .*upstream: \"fastcgi://billing_backend\"",
                "error",
            )

        # the PHP-FPM side
        if cause == "fpm_timeout":
            lines = [
                ln
                for ln in fpm
                if re.search(
                    rf"WARNING: \[pool slow\] child (\d+), script '[^']+/slow/sleep\.php' \(request: "
                    rf"\"{re.escape(r['method'] + ' ' + r['uri'])}\"\) execution timed out \([\d.]+ sec\), terminating$",
                    ln,
                )
            ]
            assert len(lines) == 1, f"{rid}: {lines}"
            child = re.search(r"child (\d+),", lines[0]).group(1)  # type: ignore[union-attr]
            assert any(f"[pool slow] child {child} exited on signal 15 (SIGTERM)" in ln for ln in fpm), rid

    crashes = Counter(
        int(m.group(1))
        for ln in fpm
        if (m := re.search(r"WARNING: \[pool crash\] child \d+ exited on signal (\d+) \(SIG\w+\)", ln))
    )
    wanted = Counter(r["signal"] for r in gt if r["cause"] == "child_crash")
    assert crashes == wanted, (crashes, wanted)

    # fpm_down: the stopped master said goodbye before the 502s; the killed one never did, its socket stayed
    legacy = fpm_lines(lab_outdir, "php-fpm-legacy.log")
    assert legacy[-2:] == [legacy[-2], legacy[-1]] and legacy[-1].endswith("NOTICE: exiting, bye-bye!")
    assert legacy[-2].endswith("NOTICE: Terminating ...")
    reports = fpm_lines(lab_outdir, "php-fpm-reports.log")
    assert not any("Terminating" in ln or "exiting" in ln for ln in reports)
    assert Path(pools["reports"]).exists(), "the SIGKILLed master's socket should have stayed behind"
    assert not Path(pools["legacy"]).exists()

    # protocol_mismatch: the plain HTTP server got each fastcgi_pass request as a bad request line (400, once
    # per request); PHP-FPM logged nothing for the proxy_pass ones (no request line in pool api's access log, no
    # line of pool api in its master's log)
    to_http = sorted(r["id"] for r in gt if r["cause"] == "protocol_mismatch" and r["via"] == "fastcgi_pass")
    web = fpm_lines(lab_outdir, "access_web.log")
    assert all(ACCESS_WEB_400.match(ln) for ln in web), web
    assert sorted(ACCESS_WEB_400.match(ln).group(1) for ln in web) == to_http  # type: ignore[union-attr]
    assert not any("/proxy/" in ln for ln in fpm_lines(lab_outdir, "pool-access/api-access.log"))
    assert not any("[pool api]" in ln for ln in fpm)
    # invalid_header: PHP-FPM answered, and its pool access log says 200; the refusal is NGINX's alone
    for r in gt:
        if r["cause"] == "invalid_header":
            path = r["uri"].split("?")[0]
            pool_log = fpm_lines(lab_outdir, f"pool-access/{r['pool']}-access.log")
            assert any(ln.endswith(f'"{r["method"]} {path}" 200') for ln in pool_log), (r["id"], r["pool"])

    # pool_saturated: the ondemand TCP pool says so; the static unix pool never does
    assert any("WARNING: [pool queue] server reached max_children setting (1), consider raising it" in ln for ln in fpm)
    assert not any("[pool busy] server reached" in ln for ln in fpm)


def test_distractors_are_in_the_logs(lab_outdir: Path) -> None:
    gt = ground_truth(lab_outdir)
    by_id = errors_by_id(lab_outdir)
    fatal = [r["id"] for r in gt if r["expected_status"] == 500]
    for rid in fatal:
        texts = [t for _, t in by_id[rid] if 'FastCGI sent in stderr: "PHP message: PHP Fatal error:  Uncaught' in t]
        assert len(texts) == 1, rid
        assert "\nStack trace:\n#0 " in texts[0] and '" while reading response header from upstream' in texts[0]
    unknown = [
        t
        for r in gt
        if r["expected_status"] == 404
        for _, t in by_id.get(r["id"], [])
        if 'FastCGI sent in stderr: "Primary script unknown"' in t
    ]
    assert len(unknown) >= 2
    slow = (lab_outdir / "logs" / "slow.log").read_text()
    assert re.search(
        r"^\[[^\]]+\]  \[pool www\] pid \d+\nscript_filename = \S+/sleep\.php\n\[0x[0-9a-f]+\] usleep\(\) ", slow, re.M
    )
    fpm = fpm_lines(lab_outdir)
    assert any(
        re.search(
            r"\[pool www\] child \d+, script '\S+/sleep\.php' \(request: \"GET /sleep\.php\?id=lab-\d{4}&s="
            r"[\d.]+\"\) executing too slow",
            ln,
        )
        for ln in fpm
    )
    assert any('said into stderr: "audit: checkout id=lab-' in ln for ln in fpm)
    client_gave_up = [r for r in gt if r["expected_status"] == 499]
    assert client_gave_up and all(r["observed_status"] is None for r in client_gave_up)


def test_manifest_lists_every_log_and_config(lab_outdir: Path) -> None:
    manifest = json.loads((lab_outdir / "manifest.json").read_text())
    listed = {e["path"]: e for e in manifest["logs"]}
    assert {e["type"] for e in listed.values()} == LOG_TYPES
    on_disk = {str(p.relative_to(lab_outdir)) for p in (lab_outdir / "logs").rglob("*") if p.is_file()}
    assert on_disk == set(listed), on_disk ^ set(listed)
    assert listed["logs/access.log"]["log_format"] == "lab"
    assert listed["logs/access_combined.log"]["log_format"] == "combined"
    assert len([e for e in listed.values() if e["type"] == "php_fpm"]) == 3  # one per master
    nginx_conf = (lab_outdir / manifest["configs"]["nginx"]).read_text()
    assert "log_format lab '" in nginx_conf and "user nobody nogroup;" in nginx_conf
    for conf in manifest["configs"]["php_fpm"]:
        text = (lab_outdir / conf).read_text()
        assert re.search(r"^include = pool(-\w+)?\.d/\*\.conf$", text, re.M), conf  # relative: conf/ relocatable
        assert f"error_log = {lab_outdir}/logs/" in text
    # every absolute path the configs name lies inside OUTDIR (a replay needs nothing else; /etc untouched)
    for conf in (lab_outdir / "conf").rglob("*"):
        if conf.is_file():
            for path in re.findall(r"(?<![\w:])/(?:tmp|etc|var|run|srv|home|usr)/[^\s;'\"]*", conf.read_text()):
                assert path == str(lab_outdir) or path.startswith(f"{lab_outdir}/"), f"{conf}: {path}"


def test_no_process_left_behind(lab_outdir: Path) -> None:
    """No nginx/php-fpm master, worker or orphan still runs from, or holds a file in, OUTDIR."""
    stray = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        if str(lab_outdir) in cmd or any(fd.startswith(f"{lab_outdir}/") for fd in fds):
            stray.append((pid, cmd))
    assert not stray


def test_the_lab_check_fails_loudly_when_evidence_is_missing(lab_outdir: Path, tmp_path: Path) -> None:
    """lab.verify (what `python -m lab.run` exits on) names the cause whose evidence or status is wrong."""
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from lab import verify

    copy = tmp_path / "run"
    shutil.copytree(lab_outdir, copy, ignore=shutil.ignore_patterns("*.sock", "www", "tmp"))
    assert verify.verify(copy)["result"] == "ok"
    error_log = copy / "logs" / "error.log"
    error_log.write_text(
        "".join(
            line
            for line in error_log.read_text().splitlines(keepends=True)
            if "(13: Permission denied)" not in line and 'invalid status "abc"' not in line
        )
    )
    (copy / "logs" / "access_web.log").write_text("")  # the HTTP server's 400s: protocol_mismatch loses its proof
    gt_path = copy / "ground_truth.jsonl"
    rows = ground_truth(copy)
    crash = next(r for r in rows if r["cause"] == "child_crash")
    crash["observed_status"] = 200
    gt_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = verify.verify(copy)
    assert report["result"] == "failed"
    assert set(report["not_reproduced"]) == {"socket_permission", "child_crash", "invalid_header", "protocol_mismatch"}
    assert any("access_web.log" in p for p in report["problems"])
    assert any(crash["id"] in p and "expected 502" in p for p in report["problems"])
