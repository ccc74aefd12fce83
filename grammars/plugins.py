"""Third-party log grammars, discovered through the ``badgateway.grammars`` entry point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."badgateway.grammars"]
    haproxy = "my_package.grammar:PLUGIN"

where ``PLUGIN`` is a ``GrammarPlugin`` (or a zero-argument callable returning one). Its ``parse`` returns the
same ``Fields | ParseError`` as the built-in grammars (with a ``time`` field for event time); ``log_type`` says
which stream its events join as (one of the built-in types to take part in the diagnosis, or its own name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from grammars.result import Fields, ParseError

GROUP = "badgateway.grammars"

BUILTIN = (
    ("nginx_access", "NGINX access log: combined, main, any log_format, JSON"),
    ("nginx_error", "NGINX error log, multi-line FastCGI stderr entries"),
    ("php_fpm", "PHP-FPM master log (error_log), with or without microseconds/debug prefix"),
    ("php_fpm_slowlog", "PHP-FPM slowlog entries with their stack frames"),
    ("php_fpm_access", "PHP-FPM pool access log (default access.format)"),
)


@dataclass(frozen=True, slots=True)
class GrammarPlugin:
    """A log format added from outside: how to recognise a line, and how to parse it."""

    name: str
    parse: Callable[[str], Fields | ParseError]
    detect: Callable[[str], bool]
    log_type: str = ""
    is_entry_start: Callable[[str], bool] | None = None
    description: str = ""

    @property
    def stream_type(self) -> str:
        return self.log_type or self.name


@dataclass(frozen=True, slots=True)
class PluginProblem:
    name: str
    reason: str


def discover() -> tuple[list[GrammarPlugin], list[PluginProblem]]:
    """Load every plugin; a broken one is reported, never fatal to the others."""
    plugins: list[GrammarPlugin] = []
    problems: list[PluginProblem] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj: Any = ep.load()
            if not isinstance(obj, GrammarPlugin) and callable(obj):
                obj = obj()
            if not isinstance(obj, GrammarPlugin):
                raise TypeError(f"{ep.value} is not a GrammarPlugin")
            plugins.append(obj)
        except Exception as exc:  # noqa: BLE001 - third-party code: report and go on
            problems.append(PluginProblem(ep.name, f"{type(exc).__name__}: {exc}"))
    return plugins, problems


def log_types() -> tuple[str, ...]:
    """Every log type an input may name: the built-in ones, then the installed plugins' own (sorted)."""
    builtin = tuple(name for name, _ in BUILTIN)
    return (*builtin, *sorted({p.stream_type for p in discover()[0]} - set(builtin)))


def available() -> list[dict[str, str]]:
    """Built-in and plugin grammars, for ``badgateway grammars``."""
    rows = [{"name": n, "log_type": n, "origin": "builtin", "description": d} for n, d in BUILTIN]
    plugins, problems = discover()
    rows += [
        {"name": p.name, "log_type": p.stream_type, "origin": "plugin", "description": p.description} for p in plugins
    ]
    rows += [
        {"name": p.name, "log_type": "", "origin": "plugin (failed to load)", "description": p.reason} for p in problems
    ]
    return rows
