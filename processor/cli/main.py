"""``badgateway``: replay | run | follow | filter | check-config | grammars | produce | completion.

User errors print one located line (``badgateway: error: file:line: message``) and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

from grammars.plugins import log_types
from processor import __version__
from processor.cli import check_config
from processor.cli.arguments import EXIT_USAGE, Parser, host_pattern, poll_seconds, seconds, zone
from processor.cli.episode_options import add_episode_options
from processor.core.errors import BadgatewayError, UserConfigError, escape_controls
from processor.io.kafka.client import backend_names
from processor.runners.settings import add_window_options, positive_int


def add_input_options(p: argparse.ArgumentParser) -> None:
    """Options shared by replay, follow and filter: what the logs are and what the configs say."""
    p.add_argument("--type", choices=log_types(), help="log type of every input (none: detected per file)")
    p.add_argument("--nginx-conf", metavar="FILE", help="nginx.conf: log_format, access_log, fastcgi_pass, timeouts")
    p.add_argument(
        "--fpm-conf",
        metavar="PATH",
        action="append",
        default=[],
        help="php-fpm.conf files, directories (their php-fpm*.conf) or globs, repeatable, one master "
        "each: pools and their listen addresses",
    )
    p.add_argument("--log-format", metavar="STRING", help="the access log_format, when no nginx.conf is at hand")
    p.add_argument("--escape", choices=("default", "json", "none"), default="default", help="escape= of --log-format")
    p.add_argument(
        "--timezone",
        type=zone,
        default="auto",
        metavar="TZ",
        help="IANA timezone of logs without an offset (NGINX error, PHP-FPM); 'auto': the UTC offset of"
        " the same host's access log when there is one, else UTC",
    )
    p.add_argument("--host", help="host name for every input")
    p.add_argument(
        "--host-pattern", metavar="REGEX", type=host_pattern, help="take the host from each path (group 'host')"
    )
    p.add_argument(
        "--allowed-lateness",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="how far behind the newest record a record may come and still be joined",
    )
    p.add_argument(
        "--idle-timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="an input quiet this long stops holding the join's windows open",
    )
    p.add_argument("--events", metavar="FILE", help="also write every parsed event (ECS JSON Lines)")
    p.add_argument("--dead-letter", metavar="FILE", help="write lines that did not parse (JSON Lines)")
    add_window_options(p)
    add_episode_options(p)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


LAB = "examples/lab"
EXAMPLES: dict[str, str] = {
    "replay": _examples(
        f"badgateway replay --nginx-conf {LAB}/conf/nginx.conf --fpm-conf '{LAB}/conf/php-fpm*.conf' {LAB}/logs",
        "badgateway replay -o incidents.jsonl --report report.html --nginx-conf /etc/nginx/nginx.conf "
        "--fpm-conf /etc/php/8.2/fpm /var/log/nginx /var/log/php8.2-fpm.log",
        'badgateway replay --log-format \'$remote_addr - $remote_user [$time_local] "$request" $status '
        "$body_bytes_sent' --timezone Europe/Paris access.log.2.gz error.log.2.gz",
    ),
    "run": _examples(
        "badgateway run --config examples/badgateway.toml",
        "badgateway run --config examples/badgateway.toml --set kafka.bootstrap_servers=127.0.0.1:9092",
        "badgateway run --config /etc/badgateway.toml --set kafka.client=confluent --set delivery.exactly_once=true",
    ),
    "follow": _examples(
        "badgateway follow --nginx-conf /etc/nginx/nginx.conf --fpm-conf '/etc/php/*/fpm/php-fpm.conf' "
        "/var/log/nginx /var/log/php8.2-fpm.log",
        "badgateway follow --state-file /var/lib/badgateway/offsets.json -o /var/log/badgateway/incidents.jsonl "
        "/var/log/nginx",
        "badgateway follow --kafka-bootstrap 127.0.0.1:9092 --kafka-topic badgateway-incidents /var/log/nginx",
    ),
    "filter": _examples(
        f"cat {LAB}/logs/access.log {LAB}/logs/error.log {LAB}/logs/php-fpm.log | badgateway filter",
        "tail -F /var/log/nginx/error.log | badgateway filter --type nginx_error --emit events",
        "vector --config shipper.toml | badgateway filter --envelope vector --emit both",
    ),
    "check-config": _examples(
        f"badgateway check-config --nginx-conf {LAB}/conf/nginx.conf --fpm-conf {LAB}/conf",
        "badgateway check-config --nginx-conf /etc/nginx/nginx.conf --fpm-conf '/etc/php/*/fpm/php-fpm.conf' --live",
        "badgateway check-config --root ./web-1 --nginx-conf /etc/nginx/nginx.conf --fpm-conf /etc/php/8.2/fpm "
        "--format jsonl",
    ),
    "grammars": _examples("badgateway grammars", "badgateway grammars --format json"),
    "produce": _examples(
        f"badgateway produce --bootstrap 127.0.0.1:9092 {LAB}/logs",
        f"badgateway produce --bootstrap 127.0.0.1:9092 --host web-1 {LAB}/logs/access.log {LAB}/logs/error.log",
        "badgateway produce --bootstrap kafka:9092 --topic nginx_access=web-access /var/log/nginx/access.log",
    ),
    "completion": _examples(
        "badgateway completion bash > /etc/bash_completion.d/badgateway",
        'badgateway completion zsh > "${fpath[1]}/_badgateway"',
        "badgateway completion fish > ~/.config/fish/completions/badgateway.fish",
    ),
}


def _command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name])
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="badgateway",
        description="Explains every NGINX 502/504 in a PHP-FPM stack.",
        epilog=_examples(
            EXAMPLES["replay"].splitlines()[1].strip(),
            EXAMPLES["check-config"].splitlines()[1].strip(),
            EXAMPLES["run"].splitlines()[1].strip(),
        )
        + "\n\n'badgateway COMMAND --help' shows every option of a command and its examples.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"badgateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rp = _command(sub, "replay", "batch-reprocess archived log files")
    rp.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or globs (.gz .bz2 .xz .zst too)")
    add_input_options(rp)
    rp.add_argument("-o", "--output", default="-", metavar="FILE", help="incidents as JSON Lines")
    rp.add_argument("--report", metavar="FILE.html", help="a self-contained HTML report with a timeline")
    rp.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="N > 1: parse every input file in its own process, joining in this one",
    )
    rp.add_argument(
        "--strict",
        action="store_true",
        help="stop (exit 2) at a file whose log type cannot be told (empty, or no line of its head "
        "matches a grammar) instead of warning and dead-lettering its unknown lines (a replay of "
        "one file always stops)",
    )
    rp.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    rp.add_argument("--quiet", "-q", action="store_true", help="no closing summary")

    run = _command(sub, "run", "the Kafka service")
    run.add_argument("--config", metavar="FILE", help="badgateway.toml (examples/badgateway.toml documents every key)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted, e.g. kafka.bootstrap_servers=host:9092), repeatable",
    )

    fo = _command(sub, "follow", "tail live log files (rotation-aware) and report incidents as they close")
    fo.add_argument("paths", nargs="+", metavar="PATH", help="files, directories or globs to follow")
    add_input_options(fo)
    fo.add_argument("-o", "--output", default="-", metavar="FILE", help="incidents as JSON Lines")
    fo.add_argument("--state-file", metavar="FILE", help="remember read offsets across restarts")
    fo.add_argument("--kafka-bootstrap", metavar="HOST:PORT", help="send incidents to Kafka instead of -o")
    fo.add_argument(
        "--kafka-topic",
        metavar="TOPIC",
        default="badgateway-incidents",
        help="the incidents topic of --kafka-bootstrap",
    )
    fo.add_argument(
        "--kafka-client",
        choices=backend_names(),
        default="kafka-python",
        help="the Kafka client library (confluent: pip install 'badgateway[confluent]')",
    )
    fo.add_argument(
        "--poll-interval",
        type=poll_seconds,
        default=0.25,
        metavar="SECONDS",
        help="how often the files are looked at for new lines",
    )

    fi = _command(sub, "filter", "records on stdin, incidents (and events) on stdout")
    add_input_options(fi)
    fi.add_argument(
        "--envelope",
        choices=("auto", "raw", "filebeat", "vector", "fluentbit"),
        default="auto",
        help="what a stdin line is: a raw log line or a shipper's JSON (auto: JSON of a known shape, else raw)",
    )
    fi.add_argument(
        "--emit",
        choices=("incidents", "events", "both", "episodes"),
        default="incidents",
        help="what goes to stdout (episodes: only the outage episode records)",
    )
    fi.add_argument(
        "--wait-for",
        default="nginx_access,nginx_error,php_fpm",
        metavar="TYPES",
        help="log types whose first record every window waits for (or EOF), comma-separated",
    )

    cc = _command(sub, "check-config", "find the 502s before they happen")
    check_config.add_arguments(cc)

    gr = _command(sub, "grammars", "list the log grammars (built in and plugins)")
    gr.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table: aligned columns for a person; json: one JSON object per line",
    )

    pr = _command(sub, "produce", "send log files to Kafka topics, one record per line (the quick start's producer)")
    from processor.cli.produce import add_arguments as produce_arguments

    produce_arguments(pr)

    co = _command(sub, "completion", "print a shell completion script")
    co.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell to complete in")

    assert isinstance(parser, Parser)
    parser.commands = dict(sub.choices)
    return parser


def _require_config(args: argparse.Namespace) -> None:
    """``run`` with nothing saying which topics to read: say what is missing, not which key of it."""
    if (
        args.config
        or any(s.startswith("inputs.") for s in args.set)
        or any(k.startswith("BADGATEWAY_INPUTS_") for k in os.environ)
    ):
        return
    raise UserConfigError(
        "run needs --config FILE: a badgateway.toml naming the broker and the topics to read "
        "(examples/badgateway.toml documents every key; try `badgateway run --config "
        "examples/badgateway.toml`)"
    )


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
            _require_config(args)
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
        if args.command == "produce":
            from processor.cli.produce import produce_command

            return produce_command(args)
        if args.command == "completion":
            from processor.cli.completion import script

            sys.stdout.write(script(parser, args.shell))
            return 0
    except BadgatewayError as exc:
        print(f"badgateway: error: {escape_controls(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
