"""The 502 lab: real nginx + PHP-FPM on loopback reproduce every cause of docs/causes.md, with a ground truth.

    python -m lab.run OUTDIR [--quiet] [--variant json-debug]   (OUTDIR under /tmp: nginx workers run as nobody)

Writes under OUTDIR: ``conf/`` (the configs the processes ran with), ``logs/`` (nginx access/error logs, one
PHP-FPM master log per master, the slowlog, pool access logs), ``www/`` (the PHP scripts), ``run/`` (pids,
sockets, stderr of the processes), ``ground_truth.jsonl`` (one object per request), ``manifest.json`` (logs and
their types, configs) and ``lab_report.json`` (what was checked). ``--variant json-debug`` runs the same
scenarios with the lab.test server logging JSON (``escape=json``, ``logs/access_json.log``) and every PHP-FPM
master at ``log_level = debug``, plus two requests in flight when master legacy stops (``upstream_reset``).
``protocol_mismatch`` is driven both ways: ``location /orders/`` fastcgi_passes to a plain HTTP server nginx itself
serves (server web.test, whose 400s for the FastCGI requests it got are ``logs/access_web.log``), ``location
/proxy/`` proxy_passes to the api pool's TCP address; ``invalid_header`` by ``badstatus.php`` (``Status: abc``) and
``nocolon.php`` (``X-Trace a b``).
Exit status 0 when every cause was reproduced with the expected status and evidence, 1 otherwise (the causes
that failed are listed), 2 on a setup error.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from lab import configs, verify
from lab.client import Request, send, send_concurrently
from lab.configs import Layout
from lab.procs import (
    NGINX,
    PHP_FPM,
    LabError,
    Processes,
    probe_backlog_capacity,
    versions,
    wait_file_contains,
    wait_unix_socket,
)

CAUSES = verify.CAUSES  # the causes the lab drives (lab/verify.py checks each was reproduced)
SERVERS = {"lab": "lab.test", "combined": "legacy.test"}


class Lab:
    def __init__(self, out: Path, quiet: bool = False, stable_ports: bool = True, variant: str = "classic") -> None:
        self.out = out
        self.quiet = quiet
        self.lay: Layout = configs.build_layout(out, configs.pick_ports(stable_ports), variant)
        self.procs = Processes()
        self.requests: list[Request] = []
        self.timeline: list[dict[str, object]] = []
        self.config_files: list[Path] = []
        self._seq = 0

    # ------------------------------------------------------------------------------------------- helpers
    def log(self, msg: str) -> None:
        if not self.quiet:
            print(f"lab: {msg}", flush=True)

    def mark(self, what: str, **kw: object) -> None:
        """Record a lab action (stop/kill a master …) in the timeline of lab_report.json."""
        self.timeline.append({"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "action": what, **kw})
        self.log(what + (f" {kw}" if kw else ""))

    @property
    def port_of(self) -> dict[str, int]:
        return {"lab": self.lay.ports.http, "combined": self.lay.ports.http_combined}

    def req(
        self,
        path: str,
        location: str,
        expected: int,
        cause: str | None = None,
        *,
        scenario: str,
        pool: str | None = "<from location>",
        server: str = "lab",
        method: str = "GET",
        body: bytes | None = None,
        client_timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> Request:
        """Plan one request; the pool defaults to the pool listening where the location points."""
        self._seq += 1
        loc = self.lay.location(location)
        if pool == "<from location>":
            pool = self._pool_at(loc.target)
        r = Request(
            id=f"lab-{self._seq:04d}",
            path=path,
            location=location,
            expected_status=expected,
            cause=cause,
            pool=pool,
            upstream=loc.target,
            server=server,
            scenario=scenario,
            method=method,
            body=body,
            client_timeout=client_timeout,
            headers=dict(headers or {}),
            extra=dict(extra),
        )
        self.requests.append(r)
        return r

    def _pool_at(self, target: str | None) -> str | None:
        for p in self.lay.pools:
            if p.nginx_address == target:
                return p.name
        return None

    def go(self, *reqs: Request) -> None:
        """Send requests one after the other."""
        for r in reqs:
            send(r, self.port_of[r.server], SERVERS[r.server])
            self._report(r)

    def together(self, *items: tuple[float, Request]) -> None:
        send_concurrently(list(items), self.port_of, SERVERS)
        for _, r in sorted(items, key=lambda i: i[0]):
            self._report(r)

    def _report(self, r: Request) -> None:
        ok = r.observed_status == r.expected_status or (r.expected_status == 499 and r.observed_status is None)
        flag = "  " if ok else "!!"
        self.log(
            f"{flag} {r.id} {r.method} {r.uri} → {r.observed_status} (expected {r.expected_status}"
            f"{', ' + r.cause if r.cause else ''}) {r.elapsed_s}s"
            + (f" [{r.client_error}]" if r.client_error and not ok else "")
        )

    def healthy(self, n: int = 1, server: str = "lab") -> None:
        """A little healthy traffic between failures (round-robin over the reachable pools)."""
        spots = [
            ("/index.php", "~ \\.php$"),
            ("/api/index.php", "/api/"),
            ("/crash/index.php", "/crash/"),
            ("/slow/index.php", "/slow/"),
            ("/batch/index.php", "/batch/"),
            ("/robots.txt", "/"),
        ]
        for _ in range(n):
            path, loc = spots[self._seq % len(spots)]
            self.go(self.req(path, loc, 200, scenario="healthy", server=server))

    # ------------------------------------------------------------------------------------------- lifecycle
    def setup(self) -> None:
        if self.out.exists() and any(self.out.iterdir()):
            for sub in ("conf", "logs", "run", "www", "tmp"):
                shutil.rmtree(self.out / sub, ignore_errors=True)
            for f in ("ground_truth.jsonl", "manifest.json", "lab_report.json"):
                (self.out / f).unlink(missing_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        configs.check_traversable(self.out)
        self.config_files = configs.write_tree(self.lay)
        for binary in (NGINX, PHP_FPM):
            if not os.access(binary, os.X_OK):
                raise LabError(f"{binary} is not installed (apt-get install -y nginx-light php8.2-fpm)")
        # test every config first, as an operator would
        for master in self.lay.MASTERS:
            self._check(
                [PHP_FPM, "-t", "-R", "-p", str(self.lay.conf), "-y", str(self.lay.master_conf(master))],
                f"php-fpm {master}",
            )
        self._check(
            [
                NGINX,
                "-t",
                "-q",
                "-p",
                f"{self.out}/",
                "-c",
                str(self.lay.conf / "nginx.conf"),
                "-e",
                str(self.lay.run / "nginx-t.stderr"),
            ],
            "nginx",
        )
        for master in self.lay.MASTERS:
            proc = self.procs.start(
                f"fpm-{master}",
                [PHP_FPM, "--nodaemonize", "-R", "-p", str(self.lay.conf), "-y", str(self.lay.master_conf(master))],
                self.lay.run / f"php-fpm-{master}.stderr",
            )
            self.mark("started php-fpm master", master=master, pid=proc.pid)
        for master in self.lay.MASTERS:
            wait_file_contains(
                self.lay.master_log(master), "ready to handle connections", proc=self.procs.procs[f"fpm-{master}"]
            )
        for pool in self.lay.pools:
            if pool.is_unix:
                wait_unix_socket(pool.listen, self.procs.procs[f"fpm-{pool.master}"])
        nginx = self.procs.start(
            "nginx",
            [NGINX, "-p", f"{self.out}/", "-c", str(self.lay.conf / "nginx.conf")],
            self.lay.run / "nginx.stderr",
        )
        self.mark("started nginx", pid=nginx.pid)
        deadline = time.monotonic() + 10
        while not (self.lay.run / "nginx.pid").exists():
            if not nginx.alive() or time.monotonic() > deadline:
                raise LabError(f"nginx did not start (see {nginx.stderr_path} and {self.lay.logs / 'error.log'})")
            time.sleep(0.05)
        time.sleep(0.3)  # workers up

    def _check(self, argv: list[str], what: str) -> None:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise LabError(f"{what} config test failed: {r.stderr.strip() or r.stdout.strip()}")

    def teardown(self) -> None:
        forced = self.procs.stop_all()
        if forced:
            self.mark("force-killed process groups after the graceful stop", pgids=forced)
        else:
            self.mark("stopped every process")
        left = self.procs.leftovers()
        if left:
            print(f"lab: WARNING: processes still alive after teardown: {left}", file=sys.stderr)
        shutil.rmtree(self.lay.tmp, ignore_errors=True)

    # ------------------------------------------------------------------------------------------- scenarios
    def scenarios(self) -> None:
        R = self.req
        php = "~ \\.php$"

        # -- warm-up: every pool answers, plus the usual distractors ---------------------------------------
        self.go(
            R("/", php, 200, scenario="healthy: / → index.php (internal redirect)", rewritten_to="/index.php"),
            R("/index.php", php, 200, scenario="healthy"),
            R("/api/index.php", "/api/", 200, scenario="healthy"),
            R("/slow/index.php", "/slow/", 200, scenario="healthy"),
            R("/batch/index.php", "/batch/", 200, scenario="healthy"),
            R("/crash/index.php", "/crash/", 200, scenario="healthy"),
            R("/big/index.php", "/big/", 200, scenario="healthy: small headers fit the 1k buffer"),
            R("/busy/index.php", "/busy/", 200, scenario="healthy"),
            R("/queue/index.php", "/queue/", 200, scenario="healthy"),
            R("/legacy/index.php", "/legacy/", 200, scenario="healthy: before its master is stopped"),
            R("/reports/index.php", "/reports/", 200, scenario="healthy: before its master is killed"),
            R("/robots.txt", "/", 200, scenario="healthy: static", pool=None),
            R("/favicon.ico", "/", 404, scenario="distractor: static 404", pool=None),
            R("/warn.php", php, 200, scenario="distractor: PHP warning via FastCGI stderr, 200"),
            R("/stderr.php", php, 200, scenario="distractor: worker writes to stderr (catch_workers_output)"),
            R("/fatal.php", php, 500, scenario="distractor: PHP fatal error with stack trace → 500"),
            R("/index.php", php, 200, scenario="healthy", server="combined"),
            R("/api/index.php", "/api/", 200, scenario="healthy: POST", method="POST", body=b"a=1&b=2"),
            R("/legacy/index.php", "/legacy/", 200, scenario="healthy", server="combined"),
            R("/reports/index.php", "/reports/", 200, scenario="healthy", server="combined"),
        )

        if self.lay.json_access:
            # json-debug only: what escape=json escapes (`"`, `\`, a tab) and what it writes as it came (a byte
            # that is not UTF-8: http.client sends "\xe9" as the single byte 0xE9)
            odd = {
                "User-Agent": 'Mozilla/5.0 "quoted" \\back\\slash\ttab caf\xe9',
                "Referer": 'https://example.com/?q="x"&r=caf\xe9',
            }
            self.go(
                R(
                    "/robots.txt",
                    "/",
                    200,
                    scenario="distractor: quotes, backslashes, a tab and a non-UTF-8 byte in the headers",
                    pool=None,
                    headers=odd,
                ),
                R(
                    "/search/index.php",
                    "/search/",
                    502,
                    "tcp_refused",
                    scenario="port closed, the same headers",
                    headers=odd,
                ),
            )

        # -- instant failures, interleaved with healthy traffic and distractors -----------------------------
        mismatch = "socket_mismatch"
        # protocol_mismatch both ways: fastcgi_pass reaches an HTTP server (it answers "HTTP/1.1 400": version 72),
        # proxy_pass speaks HTTP to a PHP-FPM pool (it resets). invalid_header: a header() line nginx refuses
        to_http = "fastcgi_pass to an HTTP server: 'unsupported FastCGI protocol version: 72'"
        to_fpm = "proxy_pass to the api pool's address: PHP-FPM resets, logs nothing"
        self.go(
            R(
                "/shop/index.php",
                "/shop/",
                502,
                mismatch,
                scenario="fastcgi_pass names a socket no pool listens on (FPM running)",
            )
        )
        self.healthy(1)
        self.go(
            R(
                "/admin/index.php",
                "/admin/",
                502,
                "socket_permission",
                scenario="socket root:root 0600, nginx workers run as nobody",
            )
        )
        self.go(R("/missing.php", php, 404, scenario="distractor: FPM 'Primary script unknown' → 404"))
        self.go(R("/search/index.php", "/search/", 502, "tcp_refused", scenario="nothing listens on the port"))
        self.go(R("/big/bigheader.php", "/big/", 502, "too_big_header", scenario="8 KB Set-Cookie, 1k buffer"))
        self.go(R("/orders/index.php", "/orders/", 502, "protocol_mismatch", scenario=to_http, via="fastcgi_pass"))
        self.go(R("/badstatus.php", php, 502, "invalid_header", scenario="header('Status: abc'): invalid status"))
        self.healthy(2)
        self.go(R("/shop/index.php?page=2", "/shop/", 502, mismatch, scenario="socket mismatch", server="combined"))
        self.go(
            R(
                "/admin/index.php?tab=users",
                "/admin/",
                502,
                "socket_permission",
                scenario="socket mode",
                server="combined",
            )
        )
        self.go(R("/fatal.php", php, 500, scenario="distractor: PHP fatal error → 500", server="combined"))
        self.go(
            R("/search/index.php?q=shoes", "/search/", 502, "tcp_refused", scenario="port closed", server="combined")
        )
        self.go(R("/big/bigheader.php", "/big/", 502, "too_big_header", scenario="big header", server="combined"))
        self.go(
            R(
                "/orders/index.php?page=2",
                "/orders/",
                502,
                "protocol_mismatch",
                scenario=to_http,
                server="combined",
                via="fastcgi_pass",
            ),
            R(
                "/proxy/index.php?page=2",
                "/proxy/",
                502,
                "protocol_mismatch",
                scenario=to_fpm,
                server="combined",
                via="proxy_pass",
            ),
            R("/nocolon.php", php, 502, "invalid_header", scenario="invalid header", server="combined"),
        )
        self.healthy(1, server="combined")
        self.go(
            R("/shop/cart.php", "/shop/", 502, mismatch, scenario="socket mismatch"),
            R("/admin/login.php", "/admin/", 502, "socket_permission", scenario="socket mode"),
            R("/nope/", "/", 404, scenario="distractor: static 404", pool=None),
            R(
                "/search/index.php",
                "/search/",
                502,
                "tcp_refused",
                scenario="port closed",
                method="POST",
                body=b"q=boots",
            ),
            R("/big/bigheader.php", "/big/", 502, "too_big_header", scenario="big header"),
            R("/proxy/index.php", "/proxy/", 502, "protocol_mismatch", scenario=to_fpm, via="proxy_pass"),
            R(
                "/nocolon.php?page=2",
                php,
                502,
                "invalid_header",
                scenario="header('X-Trace a b'): a header line without a colon",
            ),
            R("/api/badstatus.php", "/api/", 502, "invalid_header", scenario="invalid status, TCP pool"),
            R(
                "/orders/cart.php",
                "/orders/",
                502,
                "protocol_mismatch",
                scenario=to_http,
                method="POST",
                body=b"item=7",
                via="fastcgi_pass",
            ),
        )
        self.healthy(2)

        # -- the application itself answers 502/504: an access-log 502/504 with no error-log entry → `app_answered`
        self.go(
            R("/appstatus.php?code=502", php, 502, "app_answered", scenario="PHP answers 502 itself (no nginx error)")
        )
        self.healthy(1)
        self.go(
            R("/api/appstatus.php?code=504", "/api/", 504, "app_answered", scenario="PHP answers 504 itself"),
            R("/appstatus.php?code=502&retry=1", php, 502, "app_answered", scenario="PHP answers 502 itself"),
        )
        self.healthy(1)

        # -- crashing workers: SIGSEGV, SIGKILL, SIGABRT ------------------------------------------------------
        for sig, num in (("SEGV", 11), ("KILL", 9), ("ABRT", 6), ("SEGV", 11)):
            self.go(
                R(
                    f"/crash/crash.php?sig={sig}",
                    "/crash/",
                    502,
                    "child_crash",
                    scenario=f"worker kills itself with SIG{sig}",
                    signal=num,
                )
            )
            time.sleep(0.3)  # the master respawns the worker
            self.go(R("/crash/index.php", "/crash/", 200, scenario="healthy: the pool survives"))
        self.healthy(1)

        # -- timeouts: FPM's request_terminate_timeout (502) vs nginx's fastcgi_read_timeout (504) ----------
        self.mark("timeouts episode")
        self.together(
            (
                0.0,
                R(
                    "/slow/sleep.php?s=5",
                    "/slow/",
                    502,
                    "fpm_timeout",
                    scenario="request_terminate_timeout 2s < sleep 5s",
                ),
            ),
            (
                0.1,
                R(
                    "/batch/sleep.php?s=4",
                    "/batch/",
                    504,
                    "nginx_timeout",
                    scenario="fastcgi_read_timeout 2s < sleep 4s",
                ),
            ),
            (0.2, R("/sleep.php?s=1.8", php, 200, scenario="distractor: slow but fine (slowlog entry)")),
            (
                0.4,
                R(
                    "/slow/sleep.php?s=5",
                    "/slow/",
                    502,
                    "fpm_timeout",
                    scenario="timeout",
                    method="POST",
                    body=b"report=yearly",
                ),
            ),
            (0.5, R("/batch/sleep.php?s=4&report=q3", "/batch/", 504, "nginx_timeout", scenario="nginx timeout")),
            (0.6, R("/index.php", php, 200, scenario="healthy")),
            (0.7, R("/slow/index.php", "/slow/", 200, scenario="healthy: a fast request on the slow pool")),
            (0.9, R("/slow/sleep.php?s=5&page=3", "/slow/", 502, "fpm_timeout", scenario="timeout", server="combined")),
            (
                1.0,
                R("/batch/sleep.php?s=4", "/batch/", 504, "nginx_timeout", scenario="nginx timeout", server="combined"),
            ),
            (1.1, R("/sleep.php?s=1.6", php, 200, scenario="distractor: slow but fine (slowlog entry)")),
            (
                1.2,
                R(
                    "/sleep.php?s=2",
                    php,
                    499,
                    scenario="distractor: the client gives up after 0.6 s (499)",
                    client_timeout=0.6,
                ),
            ),
            (1.5, R("/api/sleep.php?s=0.3", "/api/", 200, scenario="healthy")),
            (2.0, R("/warn.php", php, 200, scenario="distractor: PHP warning")),
        )
        self.healthy(1)

        # -- saturated pools: unix backlog full (EAGAIN → 502) and TCP backlog full (connect timeout → 504) ----
        # busy: pm static, 1 worker, listen.backlog 0 → one request in the worker, one queued, the rest EAGAIN.
        # queue: ondemand, 1 worker, backlog 0 on TCP → further SYNs are dropped, nginx's 1 s connect timeout.
        q_unix = probe_backlog_capacity("unix", self.lay.run)
        q_tcp = probe_backlog_capacity("tcp", self.lay.run)
        self.mark("saturation episode", unix_queue_capacity=q_unix, tcp_queue_capacity=q_tcp)
        plan: list[tuple[float, Request]] = [
            (0.0, R("/busy/sleep.php?s=3", "/busy/", 200, scenario="occupies the only busy worker")),
            (0.0, R("/queue/sleep.php?s=3.5", "/queue/", 200, scenario="occupies the only queue worker")),
        ]
        for i in range(q_unix):
            plan.append(
                (0.3 + 0.1 * i, R("/busy/sleep.php?s=0.1", "/busy/", 200, scenario="waits in the unix listen queue"))
            )
        for i in range(q_tcp):
            plan.append(
                (0.35 + 0.1 * i, R("/queue/sleep.php?s=0.1", "/queue/", 200, scenario="waits in the TCP accept queue"))
            )
        plan += [
            (0.8, R("/busy/index.php", "/busy/", 502, "pool_saturated", scenario="unix listen queue full: EAGAIN")),
            (
                0.9,
                R(
                    "/queue/index.php",
                    "/queue/",
                    504,
                    "pool_saturated",
                    scenario="TCP accept queue full: SYN dropped, connect timeout",
                ),
            ),
            (1.0, R("/index.php", php, 200, scenario="healthy")),
            (1.1, R("/busy/index.php?page=2", "/busy/", 502, "pool_saturated", scenario="EAGAIN")),
            (1.2, R("/queue/index.php?page=2", "/queue/", 504, "pool_saturated", scenario="connect timeout")),
            (1.4, R("/busy/index.php?page=3", "/busy/", 502, "pool_saturated", scenario="EAGAIN", server="combined")),
            (
                1.5,
                R(
                    "/queue/index.php?page=3",
                    "/queue/",
                    504,
                    "pool_saturated",
                    scenario="connect timeout",
                    server="combined",
                ),
            ),
            (1.7, R("/api/index.php", "/api/", 200, scenario="healthy")),
        ]
        self.together(*plan)
        time.sleep(0.5)
        self.go(
            R("/busy/index.php", "/busy/", 200, scenario="healthy: after the episode"),
            R("/queue/index.php", "/queue/", 200, scenario="healthy: after the episode"),
        )
        self.healthy(1)

        # -- fpm_down: one master stopped cleanly (socket removed → errno 2) ---------------------------------
        legacy = self.procs.procs["fpm-legacy"]
        in_flight: list[threading.Thread] = []
        if self.lay.fpm_log_level == "debug":
            # json-debug only: requests in flight when the master stops. It ends their workers with SIGTERM and
            # logs those exits at DEBUG, as php-fpm does only while it stops or reloads: a reset, not a crash
            # (docs/causes.md). At notice level the exits are not logged at all.
            stopped = "in flight when its master stops: the stop ends the worker"
            for r in (
                R("/legacy/sleep.php?s=4", "/legacy/", 502, "upstream_reset", scenario=stopped),
                R(
                    "/legacy/sleep.php?s=4&page=2",
                    "/legacy/",
                    502,
                    "upstream_reset",
                    scenario=stopped,
                    server="combined",
                ),
            ):
                in_flight.append(threading.Thread(target=self.go, args=(r,), daemon=True))
                in_flight[-1].start()
                time.sleep(0.1)
            time.sleep(0.8)  # both workers are in usleep()
        self.mark("stopping php-fpm master legacy (SIGTERM, like systemctl stop)", pid=legacy.pid)
        self.procs.send("fpm-legacy", signal.SIGTERM)
        if self.procs.wait_exit("fpm-legacy", 10) is None:
            raise LabError("php-fpm legacy master did not stop within 10 s")
        for t in in_flight:
            t.join(timeout=30)
        wait_file_contains(self.lay.master_log("legacy"), "exiting, bye-bye!")
        if os.path.exists(self.lay.pool("legacy").listen):
            raise LabError("the legacy socket is still there after a clean stop")
        time.sleep(1.0)
        self.go(R("/legacy/index.php", "/legacy/", 502, "fpm_down", scenario="master stopped: socket gone"))
        self.healthy(1)
        self.go(
            R("/legacy/report.php?month=11", "/legacy/", 502, "fpm_down", scenario="master stopped", server="combined"),
            R("/fatal.php", php, 500, scenario="distractor: PHP fatal error → 500"),
            R("/legacy/index.php", "/legacy/", 502, "fpm_down", scenario="master stopped", method="POST", body=b"x=1"),
        )

        # -- fpm_down: one master (and its workers) SIGKILLed: the socket file stays → errno 111 --------------
        reports = self.procs.procs["fpm-reports"]
        members = self.procs.kill_group("fpm-reports")
        self.mark("SIGKILLed php-fpm master reports and its workers", pid=reports.pid, pids=members)
        if not os.path.exists(self.lay.pool("reports").listen):
            raise LabError("the reports socket vanished after SIGKILL")
        time.sleep(1.0)
        self.go(R("/reports/index.php", "/reports/", 502, "fpm_down", scenario="master killed: stale socket"))
        self.healthy(1)
        self.go(
            R(
                "/reports/daily.php",
                "/reports/",
                502,
                "fpm_down",
                scenario="master killed: stale socket",
                server="combined",
            ),
            R("/missing.php", php, 404, scenario="distractor: Primary script unknown"),
            R("/reports/index.php?format=csv", "/reports/", 502, "fpm_down", scenario="master killed: stale socket"),
        )

        # -- no live upstreams: an upstream group whose servers all failed --------------------------------------
        self.go(
            R(
                "/billing/index.php",
                "/billing/",
                502,
                "tcp_refused",
                pool=None,
                scenario="both servers of billing_backend refuse; they are marked failed (max_fails=1)",
            )
        )
        self.healthy(1)
        self.go(
            R(
                "/billing/index.php?invoice=7",
                "/billing/",
                502,
                "no_live_upstreams",
                pool=None,
                scenario="every server of the group is marked failed",
            ),
            R(
                "/billing/pay.php",
                "/billing/",
                502,
                "no_live_upstreams",
                pool=None,
                scenario="no live upstreams",
                server="combined",
            ),
        )
        self.healthy(1)
        self.go(
            R(
                "/billing/index.php?invoice=8",
                "/billing/",
                502,
                "no_live_upstreams",
                pool=None,
                scenario="no live upstreams",
            )
        )

        # -- closing healthy traffic --------------------------------------------------------------------------
        self.go(
            R("/stderr.php", php, 200, scenario="distractor: worker stderr"),
            R("/index.php", php, 200, scenario="healthy", server="combined"),
        )
        self.healthy(3)
        time.sleep(0.5)

    # ------------------------------------------------------------------------------------------- outputs
    def write_ground_truth(self) -> Path:
        path = self.out / "ground_truth.jsonl"
        with path.open("w") as f:
            for r in self.requests:
                obj = {
                    "id": r.id,
                    "method": r.method,
                    "uri": r.uri,
                    "location": r.location,
                    "expected_status": r.expected_status,
                    "observed_status": r.observed_status,
                    "cause": r.cause,
                    "pool": r.pool,
                    "socket": r.socket,
                    "upstream": r.upstream,
                    "server": SERVERS[r.server],
                    "access_log": self.lay.lab_access_log if r.server == "lab" else "logs/access_combined.log",
                    "scenario": r.scenario,
                    "sent_at": r.sent_at,
                    "elapsed_s": r.elapsed_s,
                }
                if r.client_error:
                    obj["client_error"] = r.client_error
                if r.headers:
                    obj["headers"] = r.headers
                obj.update(r.extra)
                f.write(json.dumps(obj, sort_keys=False) + "\n")
        return path

    def write_manifest(self, report: dict[str, object]) -> Path:
        lay = self.lay

        def rel(p: Path) -> str:
            return str(p.relative_to(self.out))

        fmt_name, fmt = lay.lab_log_format
        lab_log: dict[str, object] = {
            "path": lay.lab_access_log,
            "type": "nginx_access",
            "log_format": fmt_name,
            "format": fmt,
            "server": SERVERS["lab"],
        }
        if lay.json_access:
            lab_log["escape"] = "json"
        logs: list[dict[str, object]] = [
            lab_log,
            {
                "path": "logs/access_combined.log",
                "type": "nginx_access",
                "log_format": "combined",
                "server": SERVERS["combined"],
            },
            {"path": "logs/error.log", "type": "nginx_error", "level": "info"},
            {
                # the plain HTTP server location /orders/ fastcgi_passes to: a 400 per FastCGI request it got
                "path": "logs/access_web.log",
                "type": "nginx_access",
                "log_format": "combined",
                "server": "web.test",
            },
        ]
        for master in lay.MASTERS:
            logs.append(
                {
                    "path": rel(lay.master_log(master)),
                    "type": "php_fpm",
                    "master": master,
                    "config": rel(lay.master_conf(master)),
                    "log_level": lay.fpm_log_level,
                    "pools": [p.name for p in lay.pools if p.master == master],
                }
            )
        logs.append(
            {
                "path": "logs/slow.log",
                "type": "php_fpm_slowlog",
                "pools": [p.name for p in lay.pools if any(k == "slowlog" for k, _ in p.settings)],
            }
        )
        for p in lay.pools:
            if not any(k == "access.log" for k, _ in p.settings):
                continue
            logs.append(
                {
                    "path": f"logs/pool-access/{p.name}-access.log",
                    "type": "php_fpm_access",
                    "pool": p.name,
                    "master": p.master,
                }
            )
        manifest = {
            "generator": "badgateway lab (python -m lab.run)",
            "variant": lay.variant,
            "outdir": str(self.out),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "timezone": time.strftime("%Z"),
            "utc_offset": time.strftime("%z"),
            "versions": versions(),
            "nginx_user": " ".join(configs.NGINX_USER),
            "ports": vars(lay.ports),
            "logs": logs,
            "configs": {
                "nginx": "conf/nginx.conf",
                "nginx_includes": ["conf/fastcgi_params"],
                "php_fpm": [rel(lay.master_conf(m)) for m in lay.MASTERS],
                "php_fpm_pools": {
                    rel(lay.master_conf(m)): [
                        rel(lay.master_pool_dir(m) / f"{p.name}.conf") for p in lay.pools if p.master == m
                    ]
                    for m in lay.MASTERS
                },
            },
            "pools": [
                {
                    "name": p.name,
                    "master": p.master,
                    "listen": p.listen,
                    "config": rel(lay.master_pool_dir(p.master) / f"{p.name}.conf"),
                }
                for p in lay.pools
            ],
            "ground_truth": "ground_truth.jsonl",
            "requests": len(self.requests),
            "causes": {
                c: sum(1 for r in self.requests if r.cause == c)
                for c in (*CAUSES, *sorted({r.cause for r in self.requests if r.cause} - set(CAUSES)))
            },
            "result": report.get("result"),
        }
        path = self.out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        return path


def _stable_ports_lock() -> object | None:
    """Hold /tmp/badgateway-lab.lock for the run when nobody else does (then the stable ports are ours)."""
    try:
        f = open("/tmp/badgateway-lab.lock", "a")
    except OSError:
        return None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _bind_conflict(out: Path) -> bool:
    for log in (out / "logs").glob("*.log"):
        try:
            if "Address already in use" in log.read_text(errors="replace"):
                return True
        except OSError:
            pass
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path, help="where configs, logs and the ground truth go (e.g. /tmp/badgateway-lab)")
    ap.add_argument("--quiet", "-q", action="store_true", help="only the summary")
    ap.add_argument(
        "--variant",
        choices=configs.VARIANTS,
        default="classic",
        help="json-debug: a JSON access log for lab.test and PHP-FPM at log_level debug",
    )
    args = ap.parse_args(argv)
    out = args.outdir.resolve()

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    # the stable ports (18080, 19001, …) go to one lab at a time; a concurrent lab takes ephemeral ones
    lock = _stable_ports_lock()
    t0 = time.monotonic()
    for attempt in range(3):
        lab = Lab(out, quiet=args.quiet, stable_ports=lock is not None and attempt == 0, variant=args.variant)
        try:
            lab.setup()
            break
        except LabError as exc:
            lab.teardown()
            if attempt < 2 and _bind_conflict(out):
                print(f"lab: a port was taken ({exc}); retrying with other ports", file=sys.stderr)
                continue
            print(f"lab: setup error: {exc}", file=sys.stderr)
            return 2
        except BaseException:
            lab.teardown()
            raise
    try:
        lab.scenarios()
    except LabError as exc:
        print(f"lab: scenario error: {exc}", file=sys.stderr)
        lab.teardown()
        lab.write_ground_truth()
        return 2
    except BaseException:
        lab.teardown()
        raise
    lab.teardown()
    lab.write_ground_truth()
    report = verify.verify(out, timeline=lab.timeline)
    report["duration_s"] = round(time.monotonic() - t0, 1)
    (out / "lab_report.json").write_text(json.dumps(report, indent=2) + "\n")
    lab.write_manifest(report)
    verify.print_summary(report)
    return 0 if report["result"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
