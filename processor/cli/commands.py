"""The command bodies behind ``badgateway replay`` and ``badgateway grammars`` (the CLI only parses)."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from datetime import datetime, timezone, tzinfo
from typing import Any

import orjson

from grammars.plugins import discover as discover_plugins

from processor.configs.knowledge import Knowledge, load_knowledge
from processor.core.events import NGINX_ACCESS, Event, Record, SourceRef
from processor.io.files import InputFile, discover, head_lines
from processor.io.sinks import JsonLinesSink, OutputError, check_outputs
from processor.diagnosis.join import JoinSettings
from processor.core.parse import ParseSettings
from processor.pipeline import Output, Pipeline, PipelineSettings
from processor.runners.replay import Plan
from processor.cli.summary import IncidentTally, escape_controls, missing_knowledge


def build_pipeline(args: argparse.Namespace, *, emit_events: bool, knowledge: Knowledge | None = None,
                   host_timezones: dict[str, tzinfo] | None = None) -> tuple[Pipeline, Knowledge]:
    """Configs and options → one Pipeline (shared by replay, follow and filter)."""
    if knowledge is None:
        knowledge = load_knowledge(args.nginx_conf, args.fpm_conf, args.log_format, args.escape)
    settings = PipelineSettings(
        parse=ParseSettings(formats=knowledge.formats, timezone=args.timezone or timezone.utc,
                            default_host=args.host or "", host_timezones=host_timezones or {},
                            plugins=tuple(discover_plugins()[0])),
        join=JoinSettings(allowed_lateness_ms=int(args.allowed_lateness * 1000),
                          idle_timeout_ms=int(args.idle_timeout * 1000)),
        emit_events=emit_events,
    )
    return Pipeline(settings, knowledge.topology), knowledge


def _slim(incident: dict[str, Any]) -> dict[str, Any]:
    """What the summary and the report read of an incident: without its evidence it is ~10x smaller, so a
    long replay's memory follows the number of incidents, not the lines read."""
    bgw = incident["badgateway"]
    return {
        "@timestamp": incident["@timestamp"],
        "event": {"id": incident["event"]["id"], "late": incident["event"]["late"]},
        "http": incident["http"], "url": incident["url"], "source": incident["source"], "host": incident["host"],
        "badgateway": {"cause": bgw["cause"], "remediation": bgw["remediation"]},
        "php_fpm": {"pool": incident["php_fpm"]["pool"]},
    }


class _Fanout:
    """Routes each output kind to its sink; counts incidents for the summary and keeps them for the report."""

    def __init__(self, incidents: JsonLinesSink, events: JsonLinesSink | None, dead: JsonLinesSink | None,
                 keep_incidents: bool) -> None:
        self.incidents, self.events, self.dead = incidents, events, dead
        self.kept: list[dict[str, Any]] = []
        self.tally = IncidentTally()
        self._keep = keep_incidents

    def write(self, out: Output) -> None:
        if out.kind == "incident":
            self.incidents.write(out)
            self.tally.add(out.value)
            if self._keep:
                self.kept.append(_slim(out.value))
        elif out.kind == "event":
            if self.events is not None:
                self.events.write(out)
        elif self.dead is not None:
            self.dead.write(out)

    def close(self) -> None:
        for sink in (self.incidents, self.events, self.dead):
            if sink is not None:
                sink.close()


def replay_command(args: argparse.Namespace) -> int:
    from processor.cli import report
    from processor.runners.replay import plan_inputs, replay

    files = discover(args.paths)
    check_outputs({"-o": args.output, "--events": args.events, "--dead-letter": args.dead_letter,
                   "--report": args.report}, [f.path for f in files])
    pipeline, knowledge = build_pipeline(args, emit_events=bool(args.events))
    plans = plan_inputs(pipeline, files, forced_type=args.type, format_by_path=knowledge.format_by_path,
                        forced_format=knowledge.forced_format, host=args.host, host_pattern=args.host_pattern,
                        on_unknown=None if args.strict or len(files) < 2 else _warn_unknown)
    if args.timezone is None:
        zones = learn_host_timezones(pipeline, plans)
        if zones:
            pipeline, _ = build_pipeline(args, emit_events=bool(args.events), knowledge=knowledge,
                                         host_timezones=zones)
    fan = _Fanout(JsonLinesSink(args.output), JsonLinesSink(args.events) if args.events else None,
                  JsonLinesSink(args.dead_letter) if args.dead_letter else None,
                  keep_incidents=bool(args.report))
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
        print(f"badgateway: internal: lines in {counters.lines_in} != parsed {counters.lines_parsed}"
              f" + dead-lettered {counters.lines_dead_lettered}", file=sys.stderr)
    if args.report:
        write_report(args.report, report.render_html(fan.kept, stats, title="badgateway replay"))
    if not args.quiet:
        print_summary(report.summary_text(fan.tally, stats),
                      missing_knowledge(fan.tally, stats, nginx_conf=bool(args.nginx_conf or args.log_format),
                                        fpm_conf=bool(args.fpm_conf)))
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
    print(f"badgateway: warning: {escape_controls(f.display)}: {reason}: its lines are typed one by one, those no "
          "grammar takes are dead-lettered (--strict stops instead)", file=sys.stderr)


def learn_host_timezones(pipeline: Pipeline, plans: list[Plan]) -> dict[str, tzinfo]:
    """The UTC offset each host's access log writes (``$time_local`` carries it): NGINX error and PHP-FPM
    logs on that host are written in the same local time, without saying so."""
    zones: dict[str, tzinfo] = {}
    for plan in plans:
        if plan.log_type != NGINX_ACCESS or plan.host in zones:
            continue
        for raw in head_lines(plan.file, 20):
            record = Record(raw.decode("utf-8", "surrogateescape"), SourceRef(plan.file.display, 0),
                            plan.log_type, plan.host, plan.access_format)
            parsed = pipeline.parser.parse(record)
            if isinstance(parsed, Event):
                when = parsed.fields.get("time")
                if isinstance(when, datetime) and when.tzinfo is not None:
                    zones[plan.host] = when.tzinfo
                    break
    return zones


def grammars_command(args: argparse.Namespace) -> int:
    """The grammars as a table for a person (the default) or JSON Lines (``--format json``)."""
    from grammars.plugins import available
    from processor.cli.summary import printable, table

    entries = available()
    if getattr(args, "format", "json") == "json":
        for entry in entries:
            sys.stdout.buffer.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))
        return 0
    rows = [(printable(e["name"], 30), printable(e["log_type"], 20), printable(e["origin"], 24),
             printable(e["description"], 80)) for e in entries]
    sys.stdout.write("\n".join(table(("name", "log type", "origin", "description"), rows)) + "\n")
    return 0
