"""The ``error`` and ``fpm`` kinds of ``bench_grammars.py``: realistic generated lines and the
hand-written regexes they are measured against.

The baselines extract the same fields with plain groups (no typing; for the error log no
errno/action split and the first ``, client: `` rather than the trailing context): the
ceiling for one ``re`` per line. The typed path (``parse_error_entry`` / ``parse_fpm_line``) adds int/float/
datetime conversion, syscall/errno/action, the request split, the kind and the cut flag.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from grammars import error, fpm, lowering

_POOLS = ("www", "slow", "api", "rank.example.org")
_URIS = ("/", "/index.php", "/slow.php?id={n}", "/api/v1/items/{n}?page=2&sort=desc", "/wp-admin/admin-ajax.php")
_HOSTS = ("example.com", "shop.example.com:8443", "10.0.0.1")


def error_lines(n: int, seed: int = 11) -> Iterator[str]:
    """NGINX error-log entries as a PHP-FPM stack writes them, 50 per second."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, 5, 0, 0)
    for i in range(n):
        when = (start + timedelta(seconds=i // 50)).strftime("%Y/%m/%d %H:%M:%S")
        pool = rng.choice(_POOLS)
        uri = rng.choice(_URIS).format(n=rng.randrange(10_000))
        method = rng.choice(("GET", "GET", "POST"))
        upstream = rng.choice((f"fastcgi://unix:/run/php/{pool}.sock:", "fastcgi://127.0.0.1:9000"))
        message, level = rng.choice(
            (
                ("recv() failed (104: Connection reset by peer) while reading response header from upstream", "error"),
                (
                    f"connect() to unix:/run/php/{pool}.sock failed (2: No such file or directory) while connecting "
                    "to upstream",
                    "crit",
                ),
                ("upstream prematurely closed connection while reading response header from upstream", "error"),
                ("upstream timed out (110: Connection timed out) while reading response header from upstream", "error"),
                (
                    'FastCGI sent in stderr: "PHP message: PHP Warning:  Undefined variable $x in /var/www/index.php '
                    'on line 12" while reading response header from upstream',
                    "error",
                ),
                (f'open() "/var/www/html{uri.split("?")[0]}" failed (2: No such file or directory)', "error"),
                ('limiting requests, excess: 0.520 by zone "one"', "error"),
            )
        )
        context = (
            f", client: 192.168.{rng.randrange(256)}.{rng.randrange(256)}, server: {rng.choice(_HOSTS)}, "
            f'request: "{method} {uri} HTTP/1.1", upstream: "{upstream}", host: "{rng.choice(_HOSTS)}"'
        )
        if rng.random() < 0.3:
            context += f', referrer: "https://{rng.choice(_HOSTS)}/"'
        yield f"{when} [{level}] {rng.randrange(1, 40000)}#0: *{i} {message}{context}"


def fpm_lines(n: int, seed: int = 13) -> Iterator[str]:
    """PHP-FPM master-log lines: children starting, timing out, being killed, pools saturating."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, 5, 0, 0)
    for i in range(n):
        when = (start + timedelta(seconds=i // 20)).strftime("%d-%b-%Y %H:%M:%S")
        pool = rng.choice(_POOLS)
        child = rng.randrange(100, 99999)
        uri = rng.choice(_URIS).format(n=rng.randrange(10_000))
        level, message = rng.choice(
            (
                ("NOTICE", f"[pool {pool}] child {child} started"),
                (
                    "WARNING",
                    f"[pool {pool}] child {child} exited on signal 15 (SIGTERM) after "
                    f"{rng.random() * 300:.6f} seconds from start",
                ),
                (
                    "WARNING",
                    f"[pool {pool}] child {child} exited on signal 11 (SIGSEGV - core dumped) after "
                    f"{rng.random() * 30:.6f} seconds from start",
                ),
                (
                    "WARNING",
                    f"[pool {pool}] child {child}, script '/var/www/html{uri.split('?')[0]}' (request: "
                    f'"GET {uri}") execution timed out ({rng.random() * 60:.6f} sec), terminating',
                ),
                (
                    "WARNING",
                    f"[pool {pool}] child {child}, script '/var/www/html/index.php' (request: \"POST {uri}\") "
                    f"executing too slow ({rng.random() * 5:.6f} sec), logging",
                ),
                (
                    "WARNING",
                    f"[pool {pool}] server reached pm.max_children setting ({rng.randrange(5, 50)}), "
                    "consider raising it",
                ),
                (
                    "WARNING",
                    f'[pool {pool}] child {child} said into stderr: "NOTICE: PHP message: PHP Warning:  '
                    f'Undefined index: id in /var/www/html/index.php on line {rng.randrange(400)}"',
                ),
                ("NOTICE", "ready to handle connections"),
            )
        )
        yield f"[{when}] {level}: {message}"


ERROR_BASELINE = re.compile(
    r"(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<level>\w+)\] (?P<pid>\d+)#(?P<tid>\d+): "
    r"(?:\*(?P<cid>\d+) )?(?P<message>[^,]*(?:,(?! client: )[^,]*)*)"
    r"(?:, client: (?P<client>[^,]*)(?:, server: (?P<server>[^,]*))?"
    r'(?:, request: "(?:(?P<method>[A-Z]+) (?P<uri>[^ "]*) (?P<protocol>HTTP/[\d.]+)|(?P<request>[^"]*))")?'
    r'(?:, subrequest: "(?P<subrequest>[^"]*)")?(?:, upstream: "(?P<upstream>[^"]*)")?'
    r'(?:, host: "(?P<host>[^"]*)")?(?:, referrer: "(?P<referrer>[^"]*)")?)?\Z'
)

FPM_BASELINE = re.compile(
    r"(?:\[(?P<time>[^\]]+)\] )?\[?(?P<level>[A-Z]+)(?::|\]) +"
    r"(?:(?:pid (?P<pid>\d+), )?(?P<function>\w+\(\)), line (?P<source_line>\d+): )?"
    r"(?P<message>(?:\[pool (?P<pool>[^\]]+)\] )?"
    r"(?:child (?P<child_pid>\d+)(?:, script '(?P<script>[^']*)'(?: \(request: \"(?P<request>[^\"]*)\"\))? "
    r"(?:execution timed out|executing too slow) \((?P<duration_s>[\d.]+) sec\), (?:terminating|logging)"
    r"| exited (?:on signal (?P<signal>\d+) \((?P<signal_name>\w*)(?P<core_dumped> - core dumped)?\)"
    r"|with code (?P<exit_code>\d+)) after (?P<after_s>[\d.]+) seconds from start"
    r'| started| said into (?P<stream>std\w+): "(?P<output>.*)")'
    r"|server reached (?:pm\.)?max_children setting \((?P<max_children>\d+)\).*"
    r"|unable to bind listening socket for address '?(?P<address>[^' ]*)'?: .*"
    r"|fpm is running, pid (?P<running_pid>\d+)|.*))\Z"
)


def _pyparsing(grammar: Any) -> Callable[[str], object]:
    return lambda line: lowering.parse_with(grammar, None, line)


def error_cases(n: int, case: Callable[..., Any]) -> list[Any]:
    """The ``error`` kind: ``case`` is bench_grammars' ``Case``."""
    return [
        case(
            name="error (php-fpm stack)",
            lines=list(error_lines(n)),
            baseline=ERROR_BASELINE,
            fast=error.parse_error_entry,
            slow=_pyparsing(error.ENTRY),
        )
    ]


def fpm_cases(n: int, case: Callable[..., Any]) -> list[Any]:
    """The ``fpm`` kind: ``case`` is bench_grammars' ``Case``."""
    return [
        case(
            name="fpm master log",
            lines=list(fpm_lines(n)),
            baseline=FPM_BASELINE,
            fast=fpm.parse_fpm_line,
            slow=_pyparsing(fpm.LINE),
        )
    ]
