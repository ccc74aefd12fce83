"""``badgateway``: replay | run | follow | filter | check-config | grammars.

User errors print one located line (``badgateway: error: file:line: message``) and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import gc
import math
import re
import sys
from collections.abc import Sequence
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processor import __version__
from processor.core.errors import BadgatewayError
from grammars.plugins import log_types
from processor.cli.episode_options import add_episode_options
from processor.io.kafka.client import backend_names
from processor.runners.settings import add_window_options, positive_int
from processor.core.errors import escape_controls
from processor.configs import check as check_config

EXIT_USAGE = 2


def _zone(name: str) -> ZoneInfo | None:
    if name == "auto":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from exc


def _seconds(text: str) -> float:
    """A duration option: a finite number of seconds, not negative (inf and nan would reach int() or sleep())."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from exc
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, 0 or more")
    return value


def _poll_seconds(text: str) -> float:
    value = _seconds(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give a poll interval above 0 and at most 3600 seconds")
    return value


def _host_pattern(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from exc
    return text


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line, as every other user error is (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"badgateway: error: {self.prog}: {escape_controls(message)} (see --help)\n")


def add_input_options(p: argparse.ArgumentParser) -> None:
    """Options shared by replay, follow and filter: what the logs are and what the configs say."""
    p.add_argument("--type", choices=log_types(), help="log type of every input (default: detected per file)")
    p.add_argument("--nginx-conf", metavar="FILE", help="nginx.conf: log_format, access_log, fastcgi_pass, timeouts")
    p.add_argument("--fpm-conf", metavar="FILE", action="append", default=[],
                   help="php-fpm.conf (repeatable, one per PHP-FPM master): pools and their listen addresses")
    p.add_argument("--log-format", metavar="STRING", help="the access log_format, when no nginx.conf is at hand")
    p.add_argument("--escape", choices=("default", "json", "none"), default="default",
                   help="escape= of --log-format")
    p.add_argument("--timezone", type=_zone, default=None, metavar="TZ",
                   help="IANA timezone of logs without an offset (NGINX error, PHP-FPM); default 'auto': the"
                        " UTC offset of the same host's access log when there is one, else UTC")
    p.add_argument("--host", help="host name for every input")
    p.add_argument("--host-pattern", metavar="REGEX", type=_host_pattern,
                   help="take the host from each path (group 'host')")
    p.add_argument("--allowed-lateness", type=_seconds, default=5.0, metavar="SECONDS")
    p.add_argument("--idle-timeout", type=_seconds, default=30.0, metavar="SECONDS")
    p.add_argument("--events", metavar="FILE", help="also write every parsed event (ECS JSON Lines)")
    p.add_argument("--dead-letter", metavar="FILE", help="write lines that did not parse (JSON Lines)")
    add_window_options(p)
    add_episode_options(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="badgateway", description="Explains every NGINX 502/504 in a PHP-FPM stack.")
    parser.add_argument("--version", action="version", version=f"badgateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rp = sub.add_parser("replay", help="batch-reprocess archived log files")
    rp.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or globs (.gz .bz2 .xz .zst too)")
    add_input_options(rp)
    rp.add_argument("-o", "--output", default="-", metavar="FILE", help="incidents as JSON Lines (default stdout)")
    rp.add_argument("--report", metavar="FILE.html", help="a self-contained HTML report with a timeline")
    rp.add_argument("--workers", type=positive_int, default=1, metavar="N",
                    help="N > 1: parse every input file in its own process, joining in this one")
    rp.add_argument("--strict", action="store_true",
                    help="stop (exit 2) at a file whose log type cannot be told (empty, or no line of its head "
                         "matches a grammar) instead of warning and dead-lettering its unknown lines (a replay of "
                         "one file always stops)")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    rp.add_argument("--quiet", "-q", action="store_true", help="no closing summary")

    run = sub.add_parser("run", help="the Kafka service")
    run.add_argument("--config", metavar="FILE", help="badgateway.toml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config key (dotted, e.g. kafka.bootstrap_servers=host:9092)")

    fo = sub.add_parser("follow", help="tail live log files (rotation-aware) and report incidents as they close")
    fo.add_argument("paths", nargs="+", metavar="PATH")
    add_input_options(fo)
    fo.add_argument("-o", "--output", default="-", metavar="FILE")
    fo.add_argument("--state-file", metavar="FILE", help="remember read offsets across restarts")
    fo.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="send incidents to Kafka instead of -o")
    fo.add_argument("--kafka-topic", metavar="TOPIC", default="badgateway-incidents")
    fo.add_argument("--kafka-client", choices=backend_names(), default="kafka-python",
                    help="the Kafka client library (confluent: pip install 'badgateway[confluent]')")
    fo.add_argument("--poll-interval", type=_poll_seconds, default=0.25, metavar="SECONDS")

    fi = sub.add_parser("filter", help="records on stdin, incidents (and events) on stdout")
    add_input_options(fi)
    fi.add_argument("--envelope", choices=("auto", "raw", "filebeat", "vector", "fluentbit"), default="auto")
    fi.add_argument("--emit", choices=("incidents", "events", "both", "episodes"), default="incidents")
    fi.add_argument("--wait-for", default="nginx_access,nginx_error,php_fpm", metavar="TYPES",
                    help="log types whose first record every window waits for (or EOF), comma-separated")

    cc = sub.add_parser("check-config", help="find the 502s before they happen")
    check_config.add_arguments(cc)

    sub.add_parser("grammars", help="list the log grammars (built in and plugins)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("replay", "follow", "filter"):
        # as the service does (service.py): each 502/504 allocates dozens of objects that live until its window
        # closes, and collecting the youngest generation every 700 allocations took ~25 % of an outage's replay
        # (40,000 failed requests: 4.95 -> 3.71 s CPU)
        gc.set_threshold(10_000, *gc.get_threshold()[1:])
    try:
        if args.command == "replay":
            from processor.cli.commands import replay_command
            return replay_command(args)
        if args.command == "run":
            from processor.cli.run import run_command
            return run_command(args)
        if args.command == "follow":
            from processor.runners.follow import follow_command
            return follow_command(args)
        if args.command == "filter":
            from processor.runners.stdin_filter import filter_command
            return filter_command(args)
        if args.command == "check-config":
            return int(check_config.run(args))
        if args.command == "grammars":
            from processor.cli.commands import grammars_command
            return grammars_command(args)
    except BadgatewayError as exc:
        print(f"badgateway: error: {escape_controls(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE

