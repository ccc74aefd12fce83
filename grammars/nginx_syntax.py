"""nginx.conf syntax: directives and blocks, as ``ngx_conf_read_token`` reads them.

This module only turns one file's text into a tree of ``Directive``; ``grammars.nginx_conf``
resolves ``include`` and extracts what badgateway needs. Quoting follows nginx: a quote opens a
string only at the start of a token; ``\\"``, ``\\'``, ``\\\\``, ``\\t``, ``\\r``, ``\\n`` are unescaped
inside quotes, every other backslash is kept (regexes such as ``\\.php$`` stay as written).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from typing import Final

import pyparsing as pp

from grammars.config_errors import ConfigError, Origin


@dataclass(frozen=True, slots=True)
class Directive:
    """One directive: ``name args… ;`` or ``name args… { block }`` (``block`` is None for the former)."""

    name: str
    args: tuple[str, ...]
    origin: Origin
    block: tuple[Directive, ...] | None = None


_UNESCAPE: Final = re.compile(r"\\([\"'\\trn])")
_ESCAPED: Final = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _unquote(tokens: pp.ParseResults) -> str:
    text = str(tokens[0])[1:-1]
    return _UNESCAPE.sub(lambda m: _ESCAPED[m.group(1)], text)


def _directive(s: str, loc: int, tokens: pp.ParseResults) -> Directive:
    body = tuple(d for d in tokens["block"] if isinstance(d, Directive)) if "block" in tokens else None
    args = tuple(str(a) for a in tokens["args"]) if "args" in tokens else ()
    # the offset stands in for the line until ``_located``: pp.lineno() counts from the start of
    # the text on every call, which made large configs quadratic
    return Directive(str(tokens["name"]), args, Origin("", loc), body)


# comment ::= "#" { any char but newline } ;          # multi_accept on;
COMMENT: Final = pp.Regex(r"#[^\n]*").set_name("comment")

# word ::= (char-not-in(space ; { } " ' # \) | "\" any | "${" name "}") { same, with # and quotes } ;
#   \.php$    /run/php/$pool.sock    ${host}_x
WORD: Final = pp.Regex(r"(?:\\.|\$\{[^}\s]*\}|[^\s;{}\"'#\\])(?:\\.|\$\{[^}\s]*\}|[^\s;{}\\])*").set_name("word")

# dquoted ::= '"' { char-not-in(" \) | "\" any } '"' ;   "$remote_addr - [$time_local]"
DQUOTED: Final = pp.Regex(r'"(?:[^"\\]|\\.)*"').set_name("double-quoted string").add_parse_action(_unquote)
# squoted ::= "'" { char-not-in(' \) | "\" any } "'" ;   '"$request" $status'
SQUOTED: Final = pp.Regex(r"'(?:[^'\\]|\\.)*'").set_name("single-quoted string").add_parse_action(_unquote)

# argument ::= dquoted | squoted | word ;
ARGUMENT: Final = (DQUOTED | SQUOTED | WORD).set_name("argument")

# statement ::= word { argument } ( ";" | "{" { statement } "}" ) ;
#   location ~ \.php$ { fastcgi_pass unix:/run/php/php8.2-fpm.sock; }
STATEMENT: Final = pp.Forward()
STATEMENT.set_name("directive")
_BODY = pp.Group(pp.ZeroOrMore(STATEMENT))("block")
STATEMENT << (
    WORD("name")
    - pp.Group(pp.ZeroOrMore(ARGUMENT))("args")
    - (pp.Suppress(";") | (pp.Suppress("{") - _BODY - pp.Suppress("}").set_name('"}"'))).set_name('";" or "{"')
).add_parse_action(_directive)

# config ::= { statement } EOF ;
CONFIG: Final = (pp.ZeroOrMore(STATEMENT) + pp.StringEnd().set_name("end of file")).ignore(COMMENT)
# offsets must index the text as written (Debian's files are tab-indented), not a tab-expanded copy
CONFIG.parse_with_tabs()


def _located(directives: tuple[Directive, ...], file: str, line_starts: list[int]) -> tuple[Directive, ...]:
    """Replace each directive's offset by ``file`` and its 1-based line."""
    return tuple(
        replace(
            d,
            origin=Origin(file, bisect.bisect_right(line_starts, d.origin.line)),
            block=None if d.block is None else _located(d.block, file, line_starts),
        )
        for d in directives
    )


def _error_message(exc: pp.ParseBaseException) -> str:
    found = exc.line[exc.column - 1 : exc.column + 19].strip() if exc.line else ""
    if exc.loc >= len(exc.pstr):
        found = "end of file"
    elif exc.pstr[exc.loc] in "\"'":
        # nginx only notices at the end of the file; the line where the quote opens is the useful one
        return f"unterminated quoted string {found!r}"
    expected = str(exc.msg).removeprefix("Expected ")
    return f"unexpected {found or 'end of line'!r}, expecting {expected}"


def parse_nginx_text(text: str, file: str) -> tuple[Directive, ...]:
    """Parse one nginx config file's text; ``ConfigError(file, line, …)`` on a syntax error."""
    try:
        result = CONFIG.parse_string(text, parse_all=True)
    except pp.ParseBaseException as exc:
        raise ConfigError(file, exc.lineno, _error_message(exc)) from None
    except RecursionError:
        # hostile nesting depth: report it like nginx would report an unusable file
        raise ConfigError(file, 0, "blocks nested too deeply") from None
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    return _located(tuple(d for d in result if isinstance(d, Directive)), file, line_starts)
