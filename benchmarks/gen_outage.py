"""Generate an outage: access (combined), NGINX error and PHP-FPM logs for N requests, a chosen share of them
failed with the evidence a real outage of that kind leaves. Deterministic by seed.

    python benchmarks/gen_outage.py OUTDIR -n 100000 --share 0.033 --kind timeout --density 200

Kinds (``--kind``; ``mix`` spreads the failures over all five, a fifth each):

  timeout     PHP-FPM ``execution timed out (30.… sec), terminating`` + ``exited on signal 15 (SIGTERM)``,
              NGINX ``recv() failed (104: Connection reset by peer)``                      → fpm_timeout
  segfault    ``exited on signal 11 (SIGSEGV - core dumped)``, NGINX ``recv() failed (104…)`` or
              ``upstream prematurely closed connection``                                   → child_crash
  socket      FPM stopped (``Terminating ...``, ``exiting, bye-bye!``) for episodes of ~2 s, NGINX
              ``connect() to unix:… failed (2: No such file or directory)`` or ``(111: Connection refused)``
              (one errno per episode), FPM back afterwards (``fpm is running``)             → fpm_down
  saturation  NGINX ``connect() to unix:… failed (11: Resource temporarily unavailable)``, PHP-FPM
              ``server reached pm.max_children setting (5)`` once per episode (again after 10 s)
                                                                                          → pool_saturated
  nginx504    NGINX ``upstream timed out (110: Connection timed out) while reading response header``,
              status 504, nothing from PHP-FPM (still working)                             → nginx_timeout

Line shapes are those of the lab recording (examples/lab/logs: NGINX 1.22 and PHP-FPM 8.2 as they write) and of
tests/corpus: ``*CID`` advancing by two per proxied request (client and upstream connection), two NGINX workers,
``upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:"`` (Debian's default pool ``www``), PHP-FPM child pids
from the pool's ``pm.max_children`` slots. A child that dies is replaced by a ``child N started`` line; with
``pid_reuse`` (the default) the new child gets the freed pid back, so the same few pids recur across failures as
they do on a busy pool whose pids the kernel recycles; ``--fresh-pids`` forks new, increasing pids instead.

Requests are ``density`` per second of event time (second-resolution stamps, as the logs have). Each request's
lines carry its completion time (an access line is written when the request ends), so the three files are in
write order. The failure count is exact: ``round(share * n)``.

Conventions follow gen_mixed.py (same start date, ``generate(outdir, ...)`` returning paths); ``events()`` yields
the same lines in memory with the request index each belongs to, for drivers that feed streams themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

KINDS = ("timeout", "segfault", "socket", "saturation", "nginx504")
EXPECTED_CAUSE = {
    "timeout": "fpm_timeout",
    "segfault": "child_crash",
    "socket": "fpm_down",
    "saturation": "pool_saturated",
    "nginx504": "nginx_timeout",
}
STREAMS = ("access", "error", "fpm")
FILES = {"access": "access.log", "error": "error.log", "fpm": "php-fpm.log"}

SOCKET = "/run/php/php8.2-fpm.sock"
POOL = "www"
SERVER = "shop.example.com"
DOCROOT = "/srv/www"
START_S = 1_795_500_000  # 2026-11-24 06:00 UTC, the day of gen_mixed's and the lab's logs
NGINX_MASTER, NGINX_WORKERS = 811, (812, 813)
FPM_MASTER = 700
EPISODE_S = 2.0  # length of an FPM-down episode, in seconds of event time (fewer failures: one shorter episode)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SCRIPTS = ("/index.php", "/api/orders.php", "/search.php", "/cart.php", "/wp-login.php", "/account/settings.php")
_STATIC = ("/static/app.{n}.js", "/images/banner-{n}.webp", "/favicon.ico", "/robots.txt")
_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
_REFERERS = ("-", "-", "https://shop.example.com/", "https://www.google.com/")
_ERROR_PAGE_BYTES = {502: 157, 504: 167}


@dataclass
class Outage:
    """What ``generate``/``events`` made: file paths (``generate`` only), lines per stream, failures per kind."""

    paths: dict[str, str] = field(default_factory=dict)
    lines: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def total_lines(self) -> int:
        return sum(self.lines.values())

    def expected_causes(self) -> Counter[str]:
        return Counter({EXPECTED_CAUSE[k]: n for k, n in self.failures.items()})


def _episodes(n: int, f: int, length: int, rnd: random.Random) -> list[int]:
    """Indices of ``f`` of ``n`` requests, in contiguous runs of about ``length`` separated by healthy ones."""
    if f <= 0:
        return []
    if f >= n:
        return list(range(n))
    k = min(max(1, math.ceil(f / max(1, length))), n - f + 1)
    lengths = [f // k + (1 if j < f % k else 0) for j in range(k)]
    healthy = n - f
    # k distinct cut points in 0..healthy: the gaps between consecutive episodes are >= 1
    cuts = sorted(rnd.sample(range(healthy + 1), k))
    out: list[int] = []
    pos, used_healthy = 0, 0
    for cut, run in zip(cuts, lengths):
        pos += cut - used_healthy
        used_healthy = cut
        out.extend(range(pos, pos + run))
        pos += run
    return out


def schedule(n: int, share: float, kind: str, rnd: random.Random, episode_requests: int = 400) -> bytearray:
    """Per request: 0 healthy, else 1 + the index of its failure kind in KINDS."""
    if kind != "mix" and kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {', '.join(KINDS)} or mix")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share {share}: between 0 and 1")
    plan = bytearray(n)
    f = round(share * n)
    f_socket = f if kind == "socket" else (round(f / len(KINDS)) if kind == "mix" else 0)
    for i in _episodes(n, f_socket, episode_requests, rnd):
        plan[i] = 1 + KINDS.index("socket")
    rest = f - f_socket
    if rest:
        free = [i for i in range(n) if not plan[i]]
        others = [k for k in KINDS if k != "socket"] if kind == "mix" else [kind]
        for j, i in enumerate(sorted(rnd.sample(free, rest))):
            plan[i] = 1 + KINDS.index(others[j % len(others)] if kind == "mix" else kind)
        if kind == "mix":  # the kinds cycle over time-sorted failures; shuffle them so none is periodic
            picked = [i for i in range(n) if plan[i] and KINDS[plan[i] - 1] != "socket"]
            codes = [plan[i] for i in picked]
            rnd.shuffle(codes)
            for i, c in zip(picked, codes):
                plan[i] = c
    return plan


def events(
    n: int,
    share: float = 0.033,
    kind: str = "mix",
    density: float = 200.0,
    seed: int = 7,
    max_children: int = 5,
    pid_reuse: bool = True,
    outage: Outage | None = None,
) -> Iterator[tuple[str, int, str]]:
    """``(stream, request index, line without newline)`` in write order; ``outage`` (if given) gets the counts."""
    rnd = random.Random(seed)
    plan = schedule(n, share, kind, rnd, max(1, round(EPISODE_S * density)))
    stats = outage if outage is not None else Outage()
    stamps: dict[int, tuple[str, str, str]] = {}

    def stamp(sec: int) -> tuple[str, str, str]:
        got = stamps.get(sec)
        if got is None:
            if len(stamps) > 4:
                stamps.clear()
            ts = time.gmtime(sec)
            mon = _MONTHS[ts.tm_mon - 1]
            got = (
                f"{ts.tm_mday:02d}/{mon}/{ts.tm_year}:{ts.tm_hour:02d}:{ts.tm_min:02d}:{ts.tm_sec:02d} +0000",
                f"{ts.tm_year}/{ts.tm_mon:02d}/{ts.tm_mday:02d} {ts.tm_hour:02d}:{ts.tm_min:02d}:{ts.tm_sec:02d}",
                f"[{ts.tm_mday:02d}-{mon}-{ts.tm_year} {ts.tm_hour:02d}:{ts.tm_min:02d}:{ts.tm_sec:02d}]",
            )
            stamps[sec] = got
        return got

    _, e0, f0 = stamp(START_S)
    yield "error", 0, f'{e0} [notice] {NGINX_MASTER}#{NGINX_MASTER}: using the "epoll" event method'
    yield "error", 0, f"{e0} [notice] {NGINX_MASTER}#{NGINX_MASTER}: nginx/1.22.1"
    yield "error", 0, f"{e0} [notice] {NGINX_MASTER}#{NGINX_MASTER}: start worker processes"
    for w in NGINX_WORKERS:
        yield "error", 0, f"{e0} [notice] {NGINX_MASTER}#{NGINX_MASTER}: start worker process {w}"
    stats.lines["error"] += 3 + len(NGINX_WORKERS)
    master = FPM_MASTER
    yield "fpm", 0, f"{f0} NOTICE: fpm is running, pid {master}"
    yield "fpm", 0, f"{f0} NOTICE: ready to handle connections"
    stats.lines["fpm"] += 2

    next_pid = master + 1
    children: list[int] = []
    born: list[float] = []
    for _ in range(max_children):
        children.append(next_pid)
        born.append(START_S)
        next_pid += 1
    fpm_up = True
    episode_errno = 2
    last_max_children_warning = -1e18
    cid = 0
    socket_code = 1 + KINDS.index("socket")
    for i in range(n):
        t = START_S + i / density
        a_stamp, e_stamp, f_stamp = stamp(int(t))
        code = plan[i]
        failing = KINDS[code - 1] if code else None
        # FPM master stopping / starting around the socket episodes
        if code == socket_code and fpm_up:
            fpm_up = False
            episode_errno = 2 if rnd.random() < 0.5 else 111
            yield "fpm", i, f"{f_stamp} NOTICE: Terminating ..."
            yield "fpm", i, f"{f_stamp} NOTICE: exiting, bye-bye!"
            stats.lines["fpm"] += 2
        elif code != socket_code and not fpm_up:
            fpm_up = True
            master = next_pid
            next_pid += 1
            yield "fpm", i, f"{f_stamp} NOTICE: fpm is running, pid {master}"
            yield "fpm", i, f"{f_stamp} NOTICE: ready to handle connections"
            stats.lines["fpm"] += 2
            children = list(range(next_pid, next_pid + max_children)) if not pid_reuse else children
            if not pid_reuse:
                next_pid += max_children
            born = [t] * max_children

        ip = f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
        method = "POST" if rnd.random() < 0.1 else "GET"
        php = failing is not None or rnd.random() < 0.8
        if php:
            script = rnd.choice(_SCRIPTS)
            uri = f"{script}?id={rnd.randint(1, 99999)}"
            cid += 2
        else:
            script = ""
            uri = rnd.choice(_STATIC).format(n=rnd.randint(1, 999))
            method = "GET"
            cid += 1
        worker = NGINX_WORKERS[i & 1] if rnd.random() < 0.5 else NGINX_WORKERS[(i + 1) & 1]
        request = f"{method} {uri} HTTP/1.1"
        if failing is None:
            roll = rnd.random()
            status = 200 if roll < 0.96 else (404 if roll < 0.985 else 302)
            size = rnd.randint(300, 60_000) if status == 200 else (153 if status == 404 else 0)
        else:
            stats.failures[failing] += 1
            status = 504 if failing == "nginx504" else 502
            size = _ERROR_PAGE_BYTES[status]
            ctx = (
                f', client: {ip}, server: {SERVER}, request: "{request}", '
                f'upstream: "fastcgi://unix:{SOCKET}:", host: "{SERVER}"'
            )
            head = f"{e_stamp} [error] {worker}#{worker}: *{cid - 1} "
            fpm_lines: list[str] = []
            if failing in ("timeout", "segfault"):
                slot = rnd.randrange(max_children)
                pid = children[slot]
                age = t - born[slot] + rnd.uniform(0.05, 2.5)
                if failing == "timeout":
                    took = 30.0 + rnd.uniform(0.0005, 0.9)
                    age = max(age, took + 0.05)
                    fpm_lines.append(
                        f"{f_stamp} WARNING: [pool {POOL}] child {pid}, script '{DOCROOT}{script}' "
                        f'(request: "{method} {uri}") execution timed out ({took:.6f} sec), '
                        f"terminating"
                    )
                    fpm_lines.append(
                        f"{f_stamp} WARNING: [pool {POOL}] child {pid} exited on signal 15 (SIGTERM) "
                        f"after {age:.6f} seconds from start"
                    )
                    error = head + (
                        "recv() failed (104: Connection reset by peer) while reading response header "
                        "from upstream" + ctx
                    )
                else:
                    fpm_lines.append(
                        f"{f_stamp} WARNING: [pool {POOL}] child {pid} exited on signal 11 "
                        f"(SIGSEGV - core dumped) after {age:.6f} seconds from start"
                    )
                    if rnd.random() < 0.5:
                        error = head + (
                            "recv() failed (104: Connection reset by peer) while reading response "
                            "header from upstream" + ctx
                        )
                    else:
                        error = head + (
                            "upstream prematurely closed connection while reading response header from upstream" + ctx
                        )
                if not pid_reuse:
                    pid = next_pid
                    next_pid += 1
                    children[slot] = pid
                born[slot] = t
                fpm_lines.append(f"{f_stamp} NOTICE: [pool {POOL}] child {pid} started")
            elif failing == "socket":
                if episode_errno == 2:
                    error = (
                        f"{e_stamp} [crit] {worker}#{worker}: *{cid - 1} connect() to unix:{SOCKET} failed "
                        f"(2: No such file or directory) while connecting to upstream{ctx}"
                    )
                else:
                    error = (
                        f"{e_stamp} [error] {worker}#{worker}: *{cid - 1} connect() to unix:{SOCKET} failed "
                        f"(111: Connection refused) while connecting to upstream{ctx}"
                    )
            elif failing == "saturation":
                if t - last_max_children_warning >= 10.0:
                    last_max_children_warning = t
                    fpm_lines.append(
                        f"{f_stamp} WARNING: [pool {POOL}] server reached pm.max_children setting "
                        f"({max_children}), consider raising it"
                    )
                error = head + (
                    f"connect() to unix:{SOCKET} failed (11: Resource temporarily unavailable) "
                    f"while connecting to upstream{ctx}"
                )
            else:  # nginx504
                error = head + (
                    "upstream timed out (110: Connection timed out) while reading response header from upstream" + ctx
                )
            for line in fpm_lines:
                yield "fpm", i, line
            stats.lines["fpm"] += len(fpm_lines)
            yield "error", i, error
            stats.lines["error"] += 1
        yield (
            "access",
            i,
            (f'{ip} - - [{a_stamp}] "{request}" {status} {size} "{rnd.choice(_REFERERS)}" "{rnd.choice(_AGENTS)}"'),
        )
        stats.lines["access"] += 1


def streams(n: int, **kwargs: object) -> tuple[dict[str, list[str]], dict[str, list[int]], Outage]:
    """``events`` as lists per stream: (lines, the request index of each line, counts)."""
    outage = Outage()
    lines: dict[str, list[str]] = {s: [] for s in STREAMS}
    index: dict[str, list[int]] = {s: [] for s in STREAMS}
    for stream, i, line in events(n, outage=outage, **kwargs):  # type: ignore[arg-type]
        lines[stream].append(line)
        index[stream].append(i)
    return lines, index, outage


def generate(
    outdir: str,
    n: int,
    share: float = 0.033,
    kind: str = "mix",
    density: float = 200.0,
    seed: int = 7,
    max_children: int = 5,
    pid_reuse: bool = True,
) -> Outage:
    """Write access.log, error.log and php-fpm.log into ``outdir``; returns their paths and counts."""
    os.makedirs(outdir, exist_ok=True)
    outage = Outage(paths={s: os.path.join(outdir, FILES[s]) for s in STREAMS})
    with contextlib.ExitStack() as stack:
        writes = {s: stack.enter_context(open(p, "w", encoding="utf-8")).write for s, p in outage.paths.items()}
        for stream, _, line in events(n, share, kind, density, seed, max_children, pid_reuse, outage):
            writes[stream](line + "\n")
    return outage


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("outdir")
    ap.add_argument("-n", "--requests", type=int, default=100_000, help="requests (access lines)")
    ap.add_argument("--share", type=float, default=0.033, help="failure share, 0..1 (default 0.033)")
    ap.add_argument("--kind", default="mix", choices=(*KINDS, "mix"))
    ap.add_argument("--density", type=float, default=200.0, help="requests per second of event time")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-children", type=int, default=5, help="pm.max_children: the pool's pid slots")
    ap.add_argument("--fresh-pids", action="store_true", help="a replaced child gets a new pid (no reuse)")
    args = ap.parse_args()
    out = generate(
        args.outdir,
        args.requests,
        args.share,
        args.kind,
        args.density,
        args.seed,
        args.max_children,
        not args.fresh_pids,
    )
    print(f"{out.total_lines:,} lines: " + ", ".join(f"{s} {out.lines[s]:,}" for s in STREAMS))
    print(
        "failures: "
        + (", ".join(f"{k} {v:,} (→ {EXPECTED_CAUSE[k]})" for k, v in sorted(out.failures.items())) or "none")
    )
    for s, p in out.paths.items():
        print(f"  {s}: {p}")


if __name__ == "__main__":
    main()
