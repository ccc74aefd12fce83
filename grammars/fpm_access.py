"""PHP-FPM pool access log in the default ``access.format = "%R - %u %t \\"%m %r\\" %s"``.

``%R`` remote address, ``%u`` remote user (empty when none: two spaces follow ``-``),
``%t`` ``DD/Mon/YYYY:HH:MM:SS +ZZZZ``, ``%m`` method, ``%r`` request URI, ``%s`` status
(php-src ``sapi/fpm/fpm/fpm_log.c``).
"""

from __future__ import annotations

from typing import Final

import pyparsing as pp

from grammars import lowering, values
from grammars.portable_regex import portable
from grammars.result import Fields, ParseError


def _user(text: str) -> str | None:
    return None if text in ("", "-") else text


def _lit(text: str) -> pp.Suppress:
    return pp.Suppress(pp.Literal(text))


# line ::= addr " - " user " " time " \"" method " " uri "\" " status
# 172.16.6.3 -  18/Jun/2022:07:32:15 +0000 "GET /index.php" 404
LINE: Final = (
    (
        pp.Regex(r"[^ ]+")("remote_addr").set_name("remote_addr")
        + _lit(" - ")
        + values.typed("remote_user", pp.Regex(r"[^ ]*"), _user)
        + _lit(" ")
        + values.typed("time", values.TIME_LOCAL, values.time_local)
        + _lit(' "')
        + pp.Regex(r"[A-Z][A-Za-z_-]*")("method").set_name("method")
        + _lit(" ")
        + pp.Regex(portable(r'(?:[^"]++|"(?! \d{3}\Z))*+'))("uri").set_name("uri")
        + _lit('" ')
        + values.typed("status", pp.Regex(r"\d{3}"), int)
        + pp.StringEnd()
    )
    .leave_whitespace()
    .set_name("php-fpm access line")
)

_FAST: Final = lowering.FastParser(LINE)


def parse_fpm_access_line(line: str) -> Fields | ParseError:
    """Parse one pool access-log line (default format). Never raises."""
    if line.endswith("\n"):
        line = line.rstrip("\r\n")
    fields = _FAST.parse(line)
    return fields if fields is not None else lowering.parse_with(LINE, _FAST, line)
