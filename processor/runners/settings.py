"""The one settings builder: how every driver turns what the user said into the same ``Pipeline``.

``replay``, ``replay --workers``, ``follow``, ``filter`` (from command-line flags) and ``run`` (from the service's
TOML ``[diagnosis]`` section) all describe the diagnosis with one ``DiagnosisSettings`` and build their pipelines
with ``build``: the same configs, windows, limits, time zones and grammar plugins, so the same logs give the same
answer whatever the driver. A setting added here reaches every driver at once.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from grammars.plugins import GrammarPlugin
from grammars.plugins import discover as discover_plugins
from processor.configs.knowledge import Knowledge, load_knowledge
from processor.core.errors import UserConfigError
from processor.core.parse import ParseSettings
from processor.diagnosis.episodes import EpisodeSettings
from processor.diagnosis.state import JoinSettings
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners.service_config import ServiceConfig

_JOIN = JoinSettings()


@dataclass(frozen=True, slots=True)
class DiagnosisSettings:
    """What the diagnosis needs to know, in the user's units (seconds). ``timezone`` None means "auto": each
    host's offset is learned from its access log (``learn_host_timezones``), UTC where there is none."""

    nginx_conf: str | None = None
    fpm_conf: tuple[str, ...] = ()
    log_format: str | None = None
    escape: str = "default"
    timezone: tzinfo | None = UTC
    default_host: str = ""
    allowed_lateness_s: float = _JOIN.allowed_lateness_ms / 1000
    idle_timeout_s: float = _JOIN.idle_timeout_ms / 1000
    match_window_s: float = _JOIN.match_window_ms / 1000
    evidence_window_s: float = _JOIN.evidence_window_ms / 1000
    max_state: int = _JOIN.max_state
    emit_events: bool = False
    episodes: EpisodeSettings | None = None  # group incidents into outage episodes (None: no episode output)
    plugins: tuple[GrammarPlugin, ...] = field(default=(), compare=False)


def plugins() -> tuple[GrammarPlugin, ...]:
    """The grammar plugins installed (a broken one is listed by ``badgateway grammars``, never fatal here)."""
    return tuple(discover_plugins()[0])


def knowledge_of(settings: DiagnosisSettings) -> Knowledge:
    """Read the configs once (a driver that rebuilds its pipeline passes the result back to ``build``)."""
    return load_knowledge(settings.nginx_conf, list(settings.fpm_conf), settings.log_format, settings.escape)


def build(
    settings: DiagnosisSettings, knowledge: Knowledge | None = None, host_timezones: Mapping[str, tzinfo] | None = None
) -> tuple[Pipeline, Knowledge]:
    """Settings (and the configs' knowledge, read here if not given) → one fresh pipeline. ``host_timezones``
    is used as given, not copied: the service fills it as it learns hosts' offsets (``ZoneHold``)."""
    if knowledge is None:
        knowledge = knowledge_of(settings)
    join = JoinSettings(
        match_window_ms=_ms(settings.match_window_s),
        evidence_window_ms=_ms(settings.evidence_window_s),
        allowed_lateness_ms=_ms(settings.allowed_lateness_s),
        idle_timeout_ms=_ms(settings.idle_timeout_s),
        max_state=settings.max_state,
    )
    episodes = settings.episodes
    if episodes is not None:
        # a resolved episode stays held as long as the join may still hold one of its records
        episodes = replace(episodes, retain_ms=join.release_ms + join.saturation_lookback_ms + join.allowed_lateness_ms)
    pipeline_settings = PipelineSettings(
        parse=ParseSettings(
            formats=dict(knowledge.formats),
            timezone=settings.timezone or UTC,
            default_host=settings.default_host,
            host_timezones=host_timezones if host_timezones is not None else {},
            plugins=settings.plugins,
        ),
        join=join,
        emit_events=settings.emit_events,
        episodes=episodes,
    )
    return Pipeline(pipeline_settings, knowledge.topology), knowledge


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def settings_from_args(args: argparse.Namespace, *, emit_events: bool, episodes: bool = False) -> DiagnosisSettings:
    """The flags replay, follow and filter share (``processor.cli.main.add_input_options``). ``episodes``: group
    incidents into episodes even without ``--episodes`` (replay's summary and report list them)."""
    wanted = episodes or bool(getattr(args, "episodes", None)) or getattr(args, "emit", None) == "episodes"
    rules = None
    if wanted:
        rules = episode_rules(
            getattr(args, "episode_gap", 60.0),
            getattr(args, "episode_wait", 10.0),
            getattr(args, "episode_interval", 300.0),
            getattr(args, "episodes_fleet", False),
            "--episode-*",
        )
    return DiagnosisSettings(
        nginx_conf=args.nginx_conf,
        fpm_conf=tuple(args.fpm_conf or ()),
        log_format=args.log_format,
        escape=args.escape,
        timezone=args.timezone,
        default_host=args.host or "",
        allowed_lateness_s=args.allowed_lateness,
        idle_timeout_s=args.idle_timeout,
        match_window_s=getattr(args, "match_window", _JOIN.match_window_ms / 1000),
        evidence_window_s=getattr(args, "evidence_window", _JOIN.evidence_window_ms / 1000),
        max_state=getattr(args, "max_state", _JOIN.max_state),
        emit_events=emit_events,
        episodes=rules,
        plugins=plugins(),
    )


def episode_rules(gap_s: float, wait_s: float, interval_s: float, fleet: bool, where: str) -> EpisodeSettings:
    """The episode rules in milliseconds (``build`` sets ``retain_ms`` from the join's windows); ``where`` names
    the options in the error a bad combination gives."""
    try:
        return EpisodeSettings(
            gap_ms=_ms(gap_s), group_wait_ms=_ms(wait_s), group_interval_ms=_ms(interval_s), fleet=fleet
        )
    except ValueError as exc:
        raise UserConfigError(f"{where}: {exc}") from None


def settings_from_service(config: ServiceConfig) -> DiagnosisSettings:
    """The service's ``[diagnosis]`` section (``timezone`` is an IANA name or ``auto`` there, validated on load)."""
    d = config.diagnosis
    return DiagnosisSettings(
        nginx_conf=d.nginx_conf or None,
        fpm_conf=tuple(d.fpm_conf),
        log_format=d.log_format or None,
        escape=d.escape,
        timezone=None if d.timezone == "auto" else ZoneInfo(d.timezone),
        allowed_lateness_s=d.allowed_lateness_s,
        idle_timeout_s=d.idle_timeout_s,
        match_window_s=d.match_window_s,
        evidence_window_s=d.evidence_window_s,
        max_state=d.max_state,
        emit_events=bool(config.outputs.events_topic),
        plugins=plugins(),
        episodes=episode_rules(
            d.episode_gap_s,
            d.episode_wait_s,
            d.episode_interval_s,
            d.episodes_fleet,
            "diagnosis.episode_*",
        )
        if config.outputs.episodes_topic
        else None,
    )


def build_pipeline(
    args: argparse.Namespace,
    *,
    emit_events: bool,
    knowledge: Knowledge | None = None,
    host_timezones: dict[str, tzinfo] | None = None,
    episodes: bool = False,
) -> tuple[Pipeline, Knowledge]:
    """``settings_from_args`` then ``build``: the drivers that take command-line flags."""
    return build(settings_from_args(args, emit_events=emit_events, episodes=episodes), knowledge, host_timezones)


def add_window_options(p: argparse.ArgumentParser) -> None:
    """The join's windows and its state bound, settable on the command line as in the service's [diagnosis]."""
    p.add_argument(
        "--match-window",
        type=_positive_seconds,
        default=_JOIN.match_window_ms / 1000,
        metavar="SECONDS",
        help="how far apart an access line and its NGINX error entry may be",
    )
    p.add_argument(
        "--evidence-window",
        type=_positive_seconds,
        default=_JOIN.evidence_window_ms / 1000,
        metavar="SECONDS",
        help="how far from a failure PHP-FPM evidence is looked for, either side",
    )
    p.add_argument(
        "--max-state",
        type=positive_int,
        default=_JOIN.max_state,
        metavar="N",
        help="most events the join holds before it closes the oldest windows early, with a warning",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds above 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


def pipeline_factory(
    config: ServiceConfig, host_timezones: Mapping[str, tzinfo] | None = None
) -> tuple[Callable[[], Pipeline], str | None]:
    """Configs read once → a maker of fresh pipelines (rebuilds need one) and the access format forced by
    ``diagnosis.log_format`` (used by access inputs that name none). ``timezone = "auto"``: the hosts' offsets
    are ``host_timezones`` (``ZoneHold.zones``, filled as they are learned), UTC the others' (as replay)."""
    settings = settings_from_service(config)
    knowledge = knowledge_of(settings)
    known = {"combined", "main", *knowledge.formats}
    for i, inp in enumerate(config.inputs):
        if inp.format and inp.format not in known:
            raise UserConfigError(
                f"inputs.{i}.format: no log_format named {inp.format!r} "
                f"(known: {', '.join(sorted(known))}; define it in diagnosis.nginx_conf)"
            )
    zones = host_timezones if host_timezones is not None else {}  # the same mapping, filled as hosts are learned
    return (lambda: build(settings, knowledge, zones)[0]), knowledge.forced_format
