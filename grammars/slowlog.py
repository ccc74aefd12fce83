"""PHP-FPM slowlog: one entry (many lines) into typed fields.

Shape (php-src ``sapi/fpm/fpm/fpm_php_trace.c``): a blank line, then::

    [24-Nov-2026 05:42:00]  [pool www] pid 123
    script_filename = /var/www/x.php
    [0x00007f63028160f0] sleep() /var/www/x.php:3
    [0x00007f2d286c10f8] +++ dump failed

Each physical line has its own small grammar (all lowerable); the entry function walks the
lines. A ``+++ dump failed`` line is kept as a frame with only its address.
"""

from __future__ import annotations

import re
from typing import Final

import pyparsing as pp

from grammars import lowering, values
from grammars.fpm import _fpm_time
from grammars.result import Fields, ParseError


def _lit(text: str) -> pp.Suppress:
    return pp.Suppress(pp.Literal(text))


# header ::= "[" DD "-" Mon "-" YYYY " " HH ":" MM ":" SS [ "." micros ] "]  [pool " name "] pid " N
# [11-Jul-2022 05:34:02]  [pool www] pid 155     (log_level = debug: [24-Nov-2026 05:41:58.635957]  [pool docs] pid 15659)
HEADER: Final = (
    (
        _lit("[")
        + values.typed("time", pp.Regex(r"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d(?:\.\d{6})?"), _fpm_time)
        + _lit("]  [pool ")
        + pp.Regex(r"[^\]]+")("pool")
        + _lit("] pid ")
        + values.typed("pid", pp.Regex(r"\d+"), int)
        + pp.StringEnd()
    )
    .leave_whitespace()
    .set_name("slowlog header")
)

# script ::= "script_filename = " path
# script_filename = /var/www/html/public/index.php
SCRIPT: Final = (_lit("script_filename = ") + pp.Regex(r".*")("script_filename") + pp.StringEnd()).leave_whitespace()

# frame ::= "[" address "] " (function "() " file ":" line | "+++ dump failed")
# [0x00007f63028160f0] sleep() /var/www/html/public/error_handling/slowlog.php:13
FRAME: Final = (
    (
        _lit("[")
        + pp.Regex(r"0x[0-9a-fA-F]+")("address")
        + _lit("] ")
        + (
            _lit("+++ dump failed")
            | pp.Regex(r".+?\(\)(?= )")("function")
            + _lit(" ")
            + pp.Regex(r".*(?=:\d+\Z)")("file")
            + _lit(":")
            + values.typed("line", pp.Regex(r"\d+"), int)
        )
        + pp.StringEnd()
    )
    .leave_whitespace()
    .set_name("slowlog frame")
)

_HEADER_FAST: Final = lowering.FastParser(HEADER)
_SCRIPT_FAST: Final = lowering.FastParser(SCRIPT)
_FRAME_FAST: Final = lowering.FastParser(FRAME)
_ENTRY_START = re.compile(r"\[\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d(?:\.\d{6})?\]  \[pool ")


def is_entry_start(line: str) -> bool:
    """True when ``line`` is the ``[date]  [pool P] pid N`` header that starts an entry."""
    return _ENTRY_START.match(line) is not None


def _parse(grammar: pp.ParserElement, fast: lowering.FastParser, line: str) -> Fields | ParseError:
    fields = fast.parse(line)
    return fields if fields is not None else lowering.parse_with(grammar, fast, line)


def parse_slowlog_entry(text: str) -> Fields | ParseError:
    """Parse one slowlog entry (leading blank lines allowed). Never raises.

    Fields: ``time``, ``pool``, ``pid``, ``script_filename``, ``frames`` (a list of
    ``{"address", "function", "file", "line"}``, innermost call first).
    """
    lines = text.strip("\n").split("\n")
    header = _parse(HEADER, _HEADER_FAST, lines[0].rstrip("\r"))
    if isinstance(header, ParseError):
        return header
    fields: Fields = dict(header)
    fields["script_filename"] = None
    frames: list[Fields] = []
    offset = len(lines[0]) + 1
    for index, raw in enumerate(lines[1:], start=1):
        line = raw.rstrip("\r")
        if index == 1 and line.startswith("script_filename"):
            script = _parse(SCRIPT, _SCRIPT_FAST, line)
            if isinstance(script, ParseError):
                return _relocate(script, text, offset)
            fields["script_filename"] = script["script_filename"]
        elif line:
            frame = _parse(FRAME, _FRAME_FAST, line)
            if isinstance(frame, ParseError):
                return _relocate(frame, text, offset)
            frames.append(frame)
        offset += len(raw) + 1
    fields["frames"] = frames
    return fields


def _relocate(error: ParseError, text: str, offset: int) -> ParseError:
    """A line's error as an error of the whole entry (column counted in the entry text)."""
    leading = len(text) - len(text.lstrip("\n"))
    return ParseError(error.reason, leading + offset + error.column, text)
