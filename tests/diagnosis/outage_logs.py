"""Outage-shaped logs for the complexity tests: every request (or a share of them) fails with the evidence a
real outage leaves. The line shapes are the lab recording's (examples/lab/logs, real nginx 1.22 and php8.2-fpm),
with times, pids and ids generated.

Kinds, cycled per failed request: an FPM timeout (``execution timed out … terminating`` and the child's
SIGTERM exit, NGINX ``recv() failed (104``), a segfault (``exited on signal 11``, NGINX ``upstream prematurely
closed``), a missing socket (``connect() … (2:``), pool saturation (``(11: Resource temporarily unavailable)``
with a ``max_children`` warning every 10 s) and an NGINX-side 504 (``upstream timed out (110``).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

KINDS = ("timeout", "segfault", "socket", "saturated", "nginx_504")
SOCKET = "unix:/run/php/php8.2-fpm.sock"
T0 = datetime(2026, 11, 24, 5, 42, 0, tzinfo=UTC)


@dataclass
class OutageLogs:
    access: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    fpm: list[str] = field(default_factory=list)
    failures: int = 0

    def write(self, outdir: str) -> dict[str, str]:
        os.makedirs(outdir, exist_ok=True)
        paths = {}
        for name, lines in (("access.log", self.access), ("error.log", self.error), ("php-fpm.log", self.fpm)):
            paths[name] = os.path.join(outdir, name)
            with open(paths[name], "w") as f:
                f.writelines(line + "\n" for line in lines)
        return paths


def outage(
    requests: int,
    *,
    failure_share: float = 1.0,
    per_second: int = 200,
    kinds: tuple[str, ...] = KINDS,
    seed: int = 7,
    bare_every: int = 7,
    reuse_pids: int = 0,
) -> OutageLogs:
    """``requests`` requests at ``per_second``; a ``failure_share`` of them fail, cycling through ``kinds``;
    every ``bare_every``-th is a bare ``GET /`` (0: none), the others carry an ``?id=``. Each failure's child
    has a pid of its own, or (``reuse_pids``) one of that many, in turn: a small pool whose pids recur."""
    rnd = random.Random(seed)
    logs = OutageLogs()
    pid = 20_000
    last_saturation_s = -10
    logs.fpm.append(f"[{T0:%d-%b-%Y %H:%M:%S}] NOTICE: fpm is running, pid 1")
    logs.fpm.append(f"[{T0:%d-%b-%Y %H:%M:%S}] NOTICE: ready to handle connections")
    for i in range(requests):
        t = T0 + timedelta(microseconds=i * 1_000_000 // per_second)
        fpm_t, err_t = f"{t:%d-%b-%Y %H:%M:%S}", f"{t:%Y/%m/%d %H:%M:%S}"
        ip = f"10.0.{rnd.randint(0, 3)}.{rnd.randint(1, 254)}"
        # most requests are rewritten to index.php with a query, some are bare "/" (no query to match on)
        uri = "/" if bare_every and i % bare_every == 0 else f"/index.php?id={i}"
        script_uri = "/index.php" if uri == "/" else uri
        request = f"GET {uri} HTTP/1.1"
        tail = (
            f'client: {ip}, server: shop.test, request: "{request}", upstream: "fastcgi://{SOCKET}:", host: "shop.test"'
        )
        status = 200
        if rnd.random() < failure_share:
            kind = kinds[logs.failures % len(kinds)]
            logs.failures += 1
            cid = 1000 + i
            status = 502
            pid = 20_001 + logs.failures % reuse_pids if reuse_pids else pid + 1
            if kind == "timeout":
                logs.fpm.append(
                    f"[{fpm_t}] WARNING: [pool www] child {pid}, script '/srv/www/index.php' (request: "
                    f'"GET {script_uri}") execution timed out (30.004125 sec), terminating'
                )
                logs.fpm.append(
                    f"[{fpm_t}] WARNING: [pool www] child {pid} exited on signal 15 (SIGTERM) after "
                    "30.012 seconds from start"
                )
                logs.error.append(
                    f"{err_t} [error] 812#812: *{cid} recv() failed (104: Connection reset by peer) "
                    f"while reading response header from upstream, {tail}"
                )
            elif kind == "segfault":
                logs.fpm.append(
                    f"[{fpm_t}] WARNING: [pool www] child {pid} exited on signal 11 (SIGSEGV) after "
                    "0.370722 seconds from start"
                )
                logs.error.append(
                    f"{err_t} [error] 812#812: *{cid} upstream prematurely closed connection while "
                    f"reading response header from upstream, {tail}"
                )
            elif kind == "socket":
                logs.error.append(
                    f"{err_t} [crit] 812#812: *{cid} connect() to {SOCKET} failed (2: No such file or "
                    f"directory) while connecting to upstream, {tail}"
                )
            elif kind == "saturated":
                if int(t.timestamp()) - last_saturation_s >= 10:
                    last_saturation_s = int(t.timestamp())
                    logs.fpm.append(
                        f"[{fpm_t}] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it"
                    )
                logs.error.append(
                    f"{err_t} [error] 812#812: *{cid} connect() to {SOCKET} failed (11: Resource "
                    f"temporarily unavailable) while connecting to upstream, {tail}"
                )
            else:
                status = 504
                logs.error.append(
                    f"{err_t} [error] 812#812: *{cid} upstream timed out (110: Connection timed out) "
                    f"while reading response header from upstream, {tail}"
                )
        logs.access.append(f'{ip} - - [{t:%d/%b/%Y:%H:%M:%S +0000}] "{request}" {status} 150 "-" "curl/8.4.0"')
    return logs
