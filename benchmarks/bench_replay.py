"""Replay throughput next to a bare-regex pass and GoAccess over the same generated logs, in one run.

    python benchmarks/bench_replay.py [--lines 1000000] [--memory]

Prints lines/s (CPU time of this process, plus wall time) for:
  (a) bare regex: one compiled ``re`` per line with ``.groupdict()`` (access, error and FPM patterns);
  (b) ``badgateway replay`` in-process: parse + diagnose, incidents written to /dev/null;
  (c) GoAccess (Debian ``goaccess``, C) over the access log alone, when installed;
and peak memory of replay (tracemalloc-free: ru_maxrss of a child process) at two input sizes.
No thresholds here: the numbers go in the notes (machines are noisy; ratios within one run are what count).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gen_mixed import generate  # noqa: E402

ACCESS = re.compile(
    r'(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d+) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"'
)
ERROR = re.compile(
    r"(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<level>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): "
    r"(?:\*(?P<cid>\d+) )?(?P<message>.*?)(?:, client: (?P<client>[^,]*))?"
    r"(?:, server: (?P<server>[^,]*))?(?:, request: \"(?P<request>[^\"]*)\")?"
    r"(?:, upstream: \"(?P<upstream>[^\"]*)\")?(?:, host: \"(?P<host>[^\"]*)\")?$"
)
FPM = re.compile(r"\[(?P<time>[^\]]+)\] (?P<level>\w+): (?:\[pool (?P<pool>[^\]]+)\] )?(?P<message>.*)$")


def bare(paths: dict[str, str]) -> tuple[int, float, float]:
    n = 0
    c0, w0 = time.process_time(), time.perf_counter()
    for key, pattern in (("access", ACCESS), ("error", ERROR), ("fpm", FPM)):
        match = pattern.match
        with open(paths[key], encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                m = match(line)
                if m is not None:
                    m.groupdict()
                n += 1
    return n, time.process_time() - c0, time.perf_counter() - w0


def replay(outdir: str, workers: int) -> tuple[float, float]:
    from processor.cli import main

    c0, w0 = time.process_time(), time.perf_counter()
    main(["replay", outdir, "-o", os.devnull, "-q", "--no-progress", "--workers", str(workers)])
    return time.process_time() - c0, time.perf_counter() - w0


def goaccess(access: str) -> float | None:
    exe = shutil.which("goaccess")
    if exe is None:
        return None
    w0 = time.perf_counter()
    subprocess.run(
        [
            exe,
            access,
            "--log-format=COMBINED",
            "-o",
            os.devnull + ".json" if False else "/tmp/bgw-goaccess.json",
            "--no-progress",
            "--no-global-config",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - w0


def peak_rss_mb(outdir: str) -> float:
    code = (
        "import resource,sys; from processor.cli import main; "
        f"main(['replay', {outdir!r}, '-o', '/dev/null', '-q', '--no-progress']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--memory", action="store_true", help="also compare peak RSS at 1x and 10x --lines")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate(tmp, args.lines)
        n, bare_cpu, bare_wall = bare(paths)
        rp_cpu, rp_wall = replay(tmp, 1)
        par_cpu, par_wall = replay(tmp, 2)
        ga = goaccess(paths["access"])
        print(f"lines: {n:,}")
        print(f"(a) bare regex      {n / bare_cpu:>12,.0f} lines/s cpu   {n / bare_wall:>12,.0f} wall")
        print(
            f"(b) replay          {n / rp_cpu:>12,.0f} lines/s cpu   {n / rp_wall:>12,.0f} wall"
            f"   {bare_cpu / rp_cpu:.2f}x bare cpu, {bare_wall / rp_wall:.2f}x bare wall (issue #23: >= 0.25x)"
        )
        print(
            f"(b2) replay -w 2    {'':>12}                  {n / par_wall:>12,.0f} wall"
            f"   {bare_wall / par_wall:.2f}x bare wall (issue #23: >= 0.45x), {rp_wall / par_wall:.2f}x the single process"
        )
        if ga is not None:
            print(f"(c) goaccess        {'':>12}                  {args.lines / ga:>12,.0f} wall (access log only)")
        if args.memory:
            small = peak_rss_mb(tmp)
            with tempfile.TemporaryDirectory() as big:
                generate(big, args.lines * 10)
                large = peak_rss_mb(big)
            print(f"peak RSS: {small:.0f} MB at {args.lines:,} lines, {large:.0f} MB at {args.lines * 10:,}")
    _ = resource


if __name__ == "__main__":
    main()
