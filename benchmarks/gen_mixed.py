"""Generate a realistic mixed log set: access (combined), NGINX error and PHP-FPM logs, ~1% failures.

Each failure gets the error-log line NGINX writes for it and, for timeouts and crashes, the PHP-FPM
lines; the rest is healthy traffic. Used by the replay benchmark (and usable by hand).

    python benchmarks/gen_mixed.py OUTDIR --lines 1000000
"""

from __future__ import annotations

import argparse
import os
import random
from datetime import UTC, datetime, timedelta

UAS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "curl/8.4.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
PATHS = ["/", "/index.php", "/wp-login.php", "/api/items?page={n}", "/search?q=term{n}", "/static/app.{n}.js"]


def generate(outdir: str, lines: int, seed: int = 7) -> dict[str, str]:
    """Write access.log, error.log, php-fpm.log into ``outdir``; returns their paths."""
    rnd = random.Random(seed)
    os.makedirs(outdir, exist_ok=True)
    paths = {
        k: os.path.join(outdir, f)
        for k, f in (("access", "access.log"), ("error", "error.log"), ("fpm", "php-fpm.log"))
    }
    t0 = datetime(2026, 11, 24, 5, 0, 0, tzinfo=UTC)
    with open(paths["access"], "w") as acc, open(paths["error"], "w") as err, open(paths["fpm"], "w") as fpm:
        fpm.write(f"[{t0:%d-%b-%Y %H:%M:%S}] NOTICE: fpm is running, pid 1\n")
        fpm.write(f"[{t0:%d-%b-%Y %H:%M:%S}] NOTICE: ready to handle connections\n")
        cid = 0
        for i in range(lines):
            t = t0 + timedelta(milliseconds=i * 5)
            ip = f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            uri = rnd.choice(PATHS).format(n=rnd.randint(1, 9999))
            cid += 1
            status, size = 200, rnd.randint(200, 90000)
            roll = rnd.random()
            local = t.strftime("%d/%b/%Y:%H:%M:%S +0000")
            estamp = t.strftime("%Y/%m/%d %H:%M:%S")
            fstamp = t.strftime("%d-%b-%Y %H:%M:%S")
            req = f"GET {uri} HTTP/1.1"
            ctx = (
                f', client: {ip}, server: example.com, request: "{req}", upstream: '
                f'"fastcgi://unix:/run/php/www.sock:", host: "example.com"'
            )
            if roll < 0.004:
                status, size = 502, 157
                child = rnd.randint(1000, 9000)
                fpm.write(
                    f"[{fstamp}] WARNING: [pool www] child {child}, script '/srv/www/index.php' "
                    f'(request: "GET {uri}") execution timed out (30.0 sec), terminating\n'
                )
                fpm.write(
                    f"[{fstamp}] WARNING: [pool www] child {child} exited on signal 15 (SIGTERM) "
                    f"after 31.2 seconds from start\n"
                )
                err.write(
                    f"{estamp} [error] 12#12: *{cid} recv() failed (104: Connection reset by peer) "
                    f"while reading response header from upstream{ctx}\n"
                )
            elif roll < 0.006:
                status, size = 502, 157
                fpm.write(
                    f"[{fstamp}] WARNING: [pool www] child {rnd.randint(1000, 9000)} exited on signal 11 "
                    f"(SIGSEGV - core dumped) after 3.5 seconds from start\n"
                )
                err.write(
                    f"{estamp} [error] 12#12: *{cid} upstream prematurely closed connection while "
                    f"reading response header from upstream{ctx}\n"
                )
            elif roll < 0.008:
                status, size = 504, 167
                err.write(
                    f"{estamp} [error] 12#12: *{cid} upstream timed out (110: Connection timed out) "
                    f"while reading response header from upstream{ctx}\n"
                )
            elif roll < 0.010:
                status, size = 502, 157
                err.write(
                    f"{estamp} [crit] 12#12: *{cid} connect() to unix:/run/php/www.sock failed "
                    f"(11: Resource temporarily unavailable) while connecting to upstream{ctx}\n"
                )
            elif roll < 0.03:
                status = 404
            acc.write(f'{ip} - - [{local}] "{req}" {status} {size} "-" "{rnd.choice(UAS)}"\n')
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    print(generate(args.outdir, args.lines))


if __name__ == "__main__":
    main()
