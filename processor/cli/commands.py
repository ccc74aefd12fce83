"""The command bodies behind ``badgateway replay`` and ``badgateway grammars`` (the CLI only parses)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any

import orjson

from processor.cli.report_episodes import latest
from processor.cli.summary import IncidentTally, missing_knowledge
from processor.cli.summary_episodes import episodes_text
from processor.core.errors import escape_controls
from processor.io.discovery import discover
from processor.io.files import InputFile
from processor.io.sinks import JsonLinesSink, OutputError, Router, check_outputs
from processor.pipeline import Output
from processor.runners.replay import learn_host_timezones
from processor.runners.settings import build_pipeline


def _slim(incident: dict[str, Any]) -> dict[str, Any]:
    """What the summary and the report read of an incident: without its evidence it is ~10x smaller, so a
    long replay's memory follows the number of incidents, not the lines read."""
    bgw = incident["badgateway"]
    return {
        "@timestamp": incident["@timestamp"],
        "event": {"id": incident["event"]["id"], "late": incident["event"]["late"]},
        "http": incident["http"],
        "url": incident["url"],
        "source": incident["source"],
        "host": incident["host"],
        "badgateway": {"cause": bgw["cause"], "remediation": bgw["remediation"]},
        "php_fpm": {"pool": incident["php_fpm"]["pool"]},
        "nginx": {"upstream": {"address": (incident.get("nginx") or {}).get("upstream", {}).get("address")}},
    }


class _Incidents:
    """What the summary and the report read of the run's incidents: a tally, (for a report) slim copies, and each
    episode's latest record."""

    def __init__(self, keep: bool) -> None:
        self.kept: list[dict[str, Any]] = []
        self.last_episodes: dict[str, dict[str, Any]] = {}  # episode.id → its latest record (summary, report)
        self.tally = IncidentTally()
        self._keep = keep

    def observe(self, out: Output) -> None:
        if out.kind == "incident":
            self.tally.add(out.value)
            if self._keep:
                self.kept.append(_slim(out.value))
        elif out.kind == "episode":
            self.last_episodes[out.value["episode"]["id"]] = out.value


def replay_command(args: argparse.Namespace) -> int:
    from processor.cli import report
    from processor.runners.replay import plan_inputs, replay

    files = discover(args.paths)
    check_outputs(
        {
            "-o": args.output,
            "--events": args.events,
            "--dead-letter": args.dead_letter,
            "--report": args.report,
            "--episodes": args.episodes,
        },
        [f.path for f in files],
    )
    grouped = bool(args.episodes or args.report or not args.quiet)  # the summary and the report list episodes
    pipeline, knowledge = build_pipeline(args, emit_events=bool(args.events), episodes=grouped)
    plans = plan_inputs(
        pipeline,
        files,
        forced_type=args.type,
        format_by_path=knowledge.format_by_path,
        forced_format=knowledge.forced_format,
        host=args.host,
        host_pattern=args.host_pattern,
        on_unknown=None if args.strict or len(files) < 2 else _warn_unknown,
    )
    if args.timezone is None:
        zones = learn_host_timezones(pipeline, plans)
        if zones:
            pipeline, _ = build_pipeline(
                args, emit_events=bool(args.events), knowledge=knowledge, host_timezones=zones, episodes=grouped
            )
    seen = _Incidents(keep=bool(args.report))
    fan = Router(
        {
            "incident": JsonLinesSink(args.output),
            "event": JsonLinesSink(args.events) if args.events else None,
            "dead_letter": JsonLinesSink(args.dead_letter) if args.dead_letter else None,
            "episode": JsonLinesSink(args.episodes) if args.episodes else None,
        },
        observers=(seen.observe,) if args.report or not args.quiet else (),  # the summary and the report read it
    )
    progress = None
    if not args.no_progress and sys.stderr.isatty():
        from processor.cli.progress import Progress

        progress = Progress(sum(p.file.size_bytes for p in plans))
    try:
        if args.workers > 1 and not args.events:
            from processor.runners.parallel import replay_parallel

            result = replay_parallel(pipeline, plans, fan, args.workers)
        else:
            result = replay(pipeline, plans, fan, progress=progress)
    finally:
        fan.close()
        if progress is not None:
            progress.close()
    stats = result.stats
    counters = pipeline.counters
    if not (counters.lines_in == counters.lines_parsed + counters.lines_dead_lettered == stats.lines_read):
        # the invariant every run proves; a mismatch is a bug worth a loud line, not a silent number
        print(
            f"badgateway: internal: lines in {counters.lines_in} != parsed {counters.lines_parsed}"
            f" + dead-lettered {counters.lines_dead_lettered}",
            file=sys.stderr,
        )
    if args.report:
        write_report(
            args.report,
            report.render_html(
                seen.kept, stats, title="badgateway replay", episodes=latest(list(seen.last_episodes.values()))
            ),
        )
    if not args.quiet:
        print_summary(
            report.summary_text(seen.tally, stats),
            missing_knowledge(
                seen.tally, stats, nginx_conf=bool(args.nginx_conf or args.log_format), fpm_conf=bool(args.fpm_conf)
            ),
        )
        if seen.last_episodes:
            print(episodes_text(latest(list(seen.last_episodes.values()))), end="", file=sys.stderr)
    return 0


def print_summary(text: str, missing: list[str]) -> None:
    """The closing summary on stderr, then what the run could not know; coloured on a terminal."""
    from processor.cli.terminal import colour_enabled, paint, paint_summary

    if missing:
        text += "\nwhat this run could not know:\n" + "".join(f"  {line}\n" for line in missing)
    if colour_enabled(sys.stderr):
        text = paint_summary(text)
        for line in missing:
            text = text.replace(f"  {line}\n", f"  {paint(line, 'yellow')}\n")
    print(text, file=sys.stderr)


def write_report(path: str, html: str) -> None:
    """The HTML report, whole or not at all (a full disk leaves no half page behind)."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(html)
    except OSError as err:
        if os.path.isfile(path):  # never a device such as /dev/full
            try:
                os.unlink(path)
            except OSError:
                pass
        reason = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err)).lower()
        raise OutputError(path, f"{reason}; the report was not written") from err


def _warn_unknown(f: InputFile, reason: str) -> None:
    print(
        f"badgateway: warning: {escape_controls(f.display)}: {reason}: its lines are typed one by one, those no "
        "grammar takes are dead-lettered (--strict stops instead)",
        file=sys.stderr,
    )


def grammars_command(args: argparse.Namespace) -> int:
    """The grammars as a table for a person (the default) or JSON Lines (``--format json``)."""
    from grammars.plugins import available
    from processor.cli.summary import printable, table

    entries = available()
    if getattr(args, "format", "json") == "json":
        for entry in entries:
            sys.stdout.buffer.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        return 0
    rows = [
        (
            printable(e["name"], 30),
            printable(e["log_type"], 20),
            printable(e["origin"], 24),
            printable(e["description"], 80),
        )
        for e in entries
    ]
    sys.stdout.write("\n".join(table(("name", "log type", "origin", "description"), rows)) + "\n")
    return 0
