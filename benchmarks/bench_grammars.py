"""Grammar throughput, by hand: ``python benchmarks/bench_grammars.py --kind access|error|fpm|all``.

For each case, in the same run: (a) a hand-written equivalent regex, ``re.match(...).groupdict()``
(untyped strings: the ceiling); (b) the lowered FastParser path to typed Fields; (c) pure pyparsing
on a sample. Target: (b) >= 50% of (a).

To add a kind, add a function returning ``Case`` objects to ``KINDS``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import bench_error_fpm  # noqa: E402
from grammars import access, lowering  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One grammar measured three ways on the same lines."""

    name: str
    lines: list[str]
    baseline: re.Pattern[str]  # (a) hand-written regex with named groups
    fast: Callable[[str], object]  # (b) lowered path to typed fields
    slow: Callable[[str], object]  # (c) pyparsing only


_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "-",
)
_URIS = ("/", "/index.php", "/slow.php?id={n}", "/api/v1/items/{n}?page=2&sort=desc", "/static/app.{n}.js")
_STATUSES = (200, 200, 200, 200, 304, 404, 502, 504, 499)
_UPSTREAMS = ("unix:/run/php/www.sock", "10.0.0.7:9000", "10.0.0.7:9000, 10.0.0.8:9000", "-")

CUSTOM_FORMAT = (
    access.COMBINED_FORMAT + ' rt=$request_time ua="$upstream_addr" us="$upstream_status"'
    ' ut="$upstream_response_time" cid=$connection'
)


def _access_lines(n: int, custom: bool, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 24, 5, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    for i in range(n):
        when = (start + timedelta(seconds=i // 50)).strftime("%d/%b/%Y:%H:%M:%S %z")
        uri = rng.choice(_URIS).format(n=rng.randrange(10_000))
        status = rng.choice(_STATUSES)
        line = (
            f"192.168.{rng.randrange(256)}.{rng.randrange(256)} - {rng.choice(('-', 'alice'))} [{when}] "
            f'"{rng.choice(("GET", "POST"))} {uri} HTTP/1.1" {status} {rng.randrange(100_000)} '
            f'"{rng.choice(("-", "https://example.com/"))}" "{rng.choice(_AGENTS)}"'
        )
        if custom:
            upstream = rng.choice(_UPSTREAMS)
            tries = upstream.count(",") + 1
            us = "-" if upstream == "-" else ", ".join(str(status) for _ in range(tries))
            ut = "-" if upstream == "-" else ", ".join(f"{rng.random():.3f}" for _ in range(tries))
            line += f' rt={rng.random() * 3:.3f} ua="{upstream}" us="{us}" ut="{ut}" cid={i}'
        yield line


_COMBINED_RE = (
    r"(?P<remote_addr>\S+) - (?P<remote_user>\S+) \[(?P<time_local>[^\]]+)\] "
    r'"(?:(?P<method>[A-Z]+) (?P<uri>\S+) (?P<protocol>HTTP/[\d.]+)|(?P<request>[^"]*))" '
    r'(?P<status>\d+) (?P<body_bytes_sent>\d+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)"'
)
_CUSTOM_RE = _COMBINED_RE + (
    r' rt=(?P<request_time>\S+) ua="(?P<upstream_addr>[^"]*)" us="(?P<upstream_status>[^"]*)"'
    r' ut="(?P<upstream_response_time>[^"]*)" cid=(?P<connection>\d+)'
)


def access_cases(n: int) -> list[Case]:
    custom = access.compile_log_format(CUSTOM_FORMAT, name="bench_custom")
    cases = []
    for name, fmt, pattern, is_custom in (
        ("access combined", access.COMBINED, _COMBINED_RE, False),
        ("access custom+upstream", custom, _CUSTOM_RE, True),
    ):
        assert fmt.fast is not None, f"{name}: format did not lower"
        grammar = fmt.grammar
        cases.append(
            Case(
                name=name,
                lines=list(_access_lines(n, is_custom)),
                baseline=re.compile(pattern),
                fast=fmt.parse,
                slow=lambda line, g=grammar: lowering.parse_with(g, None, line),
            )
        )
    return cases


# kind → case factory (lines per case); the error/fpm grammar owner adds entries here
KINDS: dict[str, Callable[[int], list[Case]]] = {
    "access": access_cases,
    "error": lambda n: bench_error_fpm.error_cases(n, Case),
    "fpm": lambda n: bench_error_fpm.fpm_cases(n, Case),
}


def _rate(fn: Callable[[str], object], lines: list[str]) -> float:
    # CPU time of this process: the shared build machines are loaded, wall time swings 2x
    started = time.process_time()
    for line in lines:
        fn(line)
    return len(lines) / (time.process_time() - started)


def run(case: Case, slow_sample: int, rounds: int) -> tuple[float, float, float]:
    match = case.baseline.match
    for line in case.lines[:1000]:  # both paths must accept the generated lines
        assert match(line) is not None, line
        result = case.fast(line)
        assert isinstance(result, dict), (line, result)

    def bare(line: str) -> object:
        return match(line).groupdict()  # type: ignore[union-attr]

    baseline = fast = 0.0
    for _ in range(rounds):  # interleaved, best of each: both see the same machine load
        baseline = max(baseline, _rate(bare, case.lines))
        fast = max(fast, _rate(case.fast, case.lines))
    slow = _rate(case.slow, case.lines[:slow_sample])
    return baseline, fast, slow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    parser.add_argument("--lines", type=int, default=300_000, help="lines per case (default 300000)")
    parser.add_argument("--slow-sample", type=int, default=3_000, help="lines for pure pyparsing")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best of each")
    args = parser.parse_args(argv)
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    print(f"{'case':<26} {'(a) re lines/s':>15} {'(b) fast lines/s':>17} {'(c) pyparsing':>14} {'(b)/(a)':>8}")
    for kind in kinds:
        for case in KINDS[kind](args.lines):
            baseline, fast, slow = run(case, args.slow_sample, args.rounds)
            print(f"{case.name:<26} {baseline:>15,.0f} {fast:>17,.0f} {slow:>14,.0f} {fast / baseline:>8.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
