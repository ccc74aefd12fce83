"""Colour on a terminal: on when the stream is a tty, off when ``NO_COLOR`` is set (https://no-color.org) or the
terminal is dumb. Text is painted after it is built, so what a file or a pipe receives is the plain text.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

_RESET = "\x1b[0m"
STYLES = {
    "bold": "\x1b[1m",
    "red": "\x1b[31m",
    "yellow": "\x1b[33m",
    "cyan": "\x1b[36m",
    "dim": "\x1b[2m",
    "green": "\x1b[32m",
}


def colour_enabled(stream: TextIO, environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Colour for this stream: a tty, ``NO_COLOR`` unset or empty, ``TERM`` not ``dumb``."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except ValueError:  # a closed stream
        return False


def paint(text: str, style: str) -> str:
    return f"{STYLES[style]}{text}{_RESET}"


_HEADING = re.compile(r"^(?:[a-z][a-z 0-9/()-]*:|incidents:|requests:|time range:)", re.M)


def paint_summary(text: str) -> str:
    """The replay summary with its headings bold, the table headers dim and a mismatch red."""
    lines = []
    in_table = False
    for line in text.split("\n"):
        if line.startswith("  ") and not in_table:
            in_table = True
            lines.append(paint(line, "dim"))  # a table's header row
            continue
        if not line.startswith("  "):
            in_table = False
        if "MISMATCH" in line:
            line = paint(line, "red")
        elif _HEADING.match(line):
            head, sep, rest = line.partition(":")
            line = paint(head + sep, "bold") + rest
        lines.append(line)
    return "\n".join(lines)


_SEVERITY = {"error": "red", "warning": "yellow", "info": "cyan"}
_FINDING = re.compile(r"^(error|warning|info)(: )(\S+)(:)", re.M)


def paint_findings(text: str) -> str:
    """check-config's text: each finding's severity in its colour, its code bold."""
    return _FINDING.sub(
        lambda m: paint(m.group(1), _SEVERITY[m.group(1)]) + m.group(2) + paint(m.group(3), "bold") + m.group(4), text
    )
