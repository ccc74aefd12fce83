"""``badgateway check-config``: its options, and the findings of ``processor.configs.check`` for a person (text,
coloured on a terminal) or a program (JSON Lines). Exit codes: 0 no errors, 1 errors found, 2 unreadable or
invalid config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

import orjson

from grammars.config_errors import ConfigError
from grammars.nginx_conf import load_nginx_conf
from processor.cli.terminal import colour_enabled, paint_findings
from processor.configs.check import Finding, check, not_checked
from processor.configs.knowledge import load_fpm_confs
from processor.configs.live_host import SystemHost
from processor.configs.rules import SEVERITIES
from processor.core.errors import UserConfigError, escape_controls

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``badgateway check-config``."""
    parser.add_argument("--nginx-conf", required=True, metavar="FILE", help="the main nginx.conf")
    parser.add_argument(
        "--fpm-conf",
        action="append",
        default=[],
        metavar="PATH",
        help="php-fpm.conf files, directories (their php-fpm*.conf) or globs, repeatable; without "
        "it the checks of pools (reachability, permissions, timeouts) cannot run",
    )
    parser.add_argument(
        "--live", action="store_true", help="also stat the real sockets and read this host's users and groups"
    )
    parser.add_argument(
        "--root", metavar="DIR", help="read absolute config paths under DIR (a config tree copied from another host)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "jsonl", "json"),
        default="text",
        help="text for a person; jsonl: JSON Lines, one finding per line (checks that could not "
        "run are findings with code not_checked); json: the same JSON Lines (the old name)",
    )


def run(args: argparse.Namespace) -> int:
    """Load, check, print; 0 no errors, 1 errors found, 2 unreadable or invalid config."""
    try:
        nginx = load_nginx_conf(args.nginx_conf, root=getattr(args, "root", None))
        fpms = list(load_fpm_confs(args.fpm_conf, root=getattr(args, "root", None)))
    except (ConfigError, UserConfigError) as exc:
        print(f"badgateway check-config: {escape_controls(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    findings = check(nginx, fpms, SystemHost() if args.live else None) + not_checked(nginx, fpms)
    out = sys.stdout
    if args.format in ("jsonl", "json"):
        for f in findings:
            out.write(orjson.dumps(finding_dict(f)).decode() + "\n")
    else:
        text = render_text(findings)
        out.write(paint_findings(text) if colour_enabled(out) else text)
    return EXIT_ERRORS if any(f.severity == "error" for f in findings) else EXIT_OK


def finding_dict(f: Finding) -> dict[str, object]:
    """A finding as a JSON-ready dict (origins as ``file:line`` strings)."""
    return {
        "code": f.code,
        "severity": f.severity,
        "message": f.message,
        "fix": f.fix,
        "nginx": [str(o) for o in f.nginx_origins],
        "php_fpm": [str(o) for o in f.fpm_origins],
        "cause": f.cause,
        "pool": f.pool,
        "target": f.target,
    }


def render_text(findings: Iterable[Finding]) -> str:
    """One block per finding: severity and code, message, both sides' ``file:line``, the fix."""
    blocks = []
    for f in findings:
        # names come from the configs (pools, log_formats, paths): no raw escape reaches the terminal
        lines = [f"{f.severity}: {f.code}: {escape_controls(f.message)}"]
        lines += [f"  nginx:   {escape_controls(str(o))}" for o in f.nginx_origins]
        lines += [f"  php-fpm: {escape_controls(str(o))}" for o in f.fpm_origins]
        lines.append(f"  fix:     {escape_controls(f.fix)}")
        blocks.append("\n".join(lines))
    findings = list(findings)
    checked = [f for f in findings if f.code != "not_checked"]
    counts = {s: sum(1 for f in checked if f.severity == s) for s in SEVERITIES} if checked else {}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()) or "no findings"
    skipped = sum(1 for f in findings if f.code == "not_checked")
    if skipped:
        summary += " — not a clean bill of health: the checks named under not_checked did not run"
    return "\n\n".join([*blocks, summary]) + "\n"
