"""The command line's argument types and its parser: options that say their default, a bad option in one line
with its command's usage, and the value checks every command shares."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processor.core.errors import escape_controls

EXIT_USAGE = 2


def zone(name: str) -> ZoneInfo | None:
    if name == "auto":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"unknown timezone {name!r} (use an IANA name like Europe/Paris)") from exc


def seconds(text: str) -> float:
    """A duration option: a finite number of seconds, not negative (inf and nan would reach int() or sleep())."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from exc
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds, 0 or more")
    return value


def poll_seconds(text: str) -> float:
    value = seconds(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: give a poll interval above 0 and at most 3600 seconds")
    return value


def host_pattern(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from exc
    return text


class Help(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default; the epilog's examples keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS or "%(default)" in text:
            return text
        if action.required:
            return f"{text} (required)"
        default = action.default
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            shown = "off" if default is False else "on"
        elif default is None or default == []:
            shown = "none"
        elif default == "-":
            shown = "- (stdout)"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad value in one line, as every other user error is; an unknown or missing
    option also shows the usage of the command it was given to (not the top level's)."""

    commands: dict[str, argparse.ArgumentParser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Help)
        super().__init__(*args, **kwargs)
        self.commands = {}

    def parse_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # argparse hands a sub-command's unknown options back to the top-level parser: its usage would
            # show `badgateway COMMAND`, not the options the command takes
            owner = self.commands.get(getattr(parsed, "command", None) or "", self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        usage = ""
        if message.startswith(("unrecognized arguments", "the following arguments are required")):
            usage = self.format_usage()
        self.exit(
            EXIT_USAGE, f"{usage}badgateway: error: {self.prog}: {escape_controls(message)} (see {self.prog} --help)\n"
        )
