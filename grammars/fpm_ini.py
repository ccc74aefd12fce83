"""php-fpm.conf syntax: PHP's ini format, one line at a time, and ``include=`` globs.

Yields ``IniEntry(section, key, value, origin)`` in file order with includes expanded in place.
Values are read as PHP's normal ini scanner reads them: ``;`` starts a comment outside quotes,
``"…"`` and ``'…'`` are kept literally (``\\"`` inside double quotes), adjacent pieces are joined,
surrounding blanks are dropped. ``yes``/``on``/``true`` and ``no``/``off``/``false``/``none`` are
left as written; ``grammars.fpm_conf`` interprets them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final, NamedTuple

import pyparsing as pp

from grammars.config_errors import ConfigError, Origin
from grammars.nginx_include import ConfigBudget, read_config_text, resolve_pattern

MAX_INCLUDE_DEPTH: Final = 32


class IniEntry(NamedTuple):
    """``key = value`` under ``[section]`` (``section`` is ``global`` before the first header)."""

    section: str
    key: str
    value: str
    origin: Origin


# Each line is parsed on its own (no newline inside), so pyparsing's default whitespace is right.
# comment ::= ";" { any char } ;                 ; Default Value: no
COMMENT: Final = pp.Regex(r";.*").set_name("comment")
# section ::= "[" name "]" ;                     [www]
SECTION: Final = (pp.Suppress("[") + pp.Regex(r"[^\]\n;]+")("section") + pp.Suppress("]")).set_name("section")
# key ::= name [ "[" subkey "]" ] ;              php_admin_value[memory_limit]
KEY: Final = pp.Regex(r"[A-Za-z0-9_.\-]+(?:\[[^\]\n]*\])?")("key").set_name("key")
# dquoted ::= '"' { char-not-in(" \) | "\" any } '"' ;   "%R - %u %t \"%m %r\" %s"
DQUOTED: Final = pp.Regex(r'"(?:[^"\\]|\\.)*"').set_name("double-quoted value")
# squoted ::= "'" { char-not-in(') } "'" ;     '/var/log/$pool.log'
SQUOTED: Final = pp.Regex(r"'[^']*'").set_name("single-quoted value")
# raw ::= { char-not-in(; " ') } ;               /run/php/$pool.sock
RAW: Final = pp.Regex(r"[^;\"'\n]+").set_name("value")
# value ::= { dquoted | squoted | raw } ;
VALUE: Final = pp.ZeroOrMore(DQUOTED | SQUOTED | RAW)("value").set_name("value")
# assignment ::= key "=" value ;                 listen = /run/php/php8.2-fpm.sock
ASSIGNMENT: Final = (KEY + pp.Suppress("=") - VALUE).set_name("assignment")
# line ::= [ section | assignment ] [ comment ] EOL ;
LINE: Final = (pp.Opt(SECTION | ASSIGNMENT) + pp.Opt(pp.Suppress(COMMENT)) + pp.StringEnd()).set_name("line")


def _piece(text: str) -> str:
    if text.startswith('"'):
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text.startswith("'"):
        return text[1:-1]
    return text


def parse_ini_line(line: str, file: str, lineno: int) -> tuple[str, str | None, str | None]:
    """One line → ("section", name, None) / ("entry", key, value) / ("blank", None, None)."""
    try:
        result = LINE.parse_string(line.rstrip("\r\n"))
    except pp.ParseBaseException as exc:
        raise ConfigError(
            file,
            lineno,
            f"syntax error, unexpected {line[exc.column - 1 :].strip()[:20]!r} at column {exc.column} ({exc.msg})",
        ) from None
    if "section" in result:
        return "section", str(result["section"]).strip(), None
    if "key" in result:
        pieces = [str(p) for p in result["value"]] if "value" in result else []
        # the outer blanks of the raw pieces are not part of the value (PHP trims them)
        if pieces and not pieces[0].startswith(("'", '"')):
            pieces[0] = pieces[0].lstrip()
        if pieces and not pieces[-1].startswith(("'", '"')):
            pieces[-1] = pieces[-1].rstrip()
        return "entry", str(result["key"]), "".join(_piece(p) for p in pieces)
    return "blank", None, None


class IniReader:
    """Reads a php-fpm.conf tree; ``files`` lists every file read, in order."""

    def __init__(self, prefix: str, root: str | None) -> None:
        self.prefix = prefix
        self.root = root
        self.files: list[str] = []
        self.budget = ConfigBudget()
        self.section = "global"
        #: where each ``[section]`` header was first seen
        self.section_origins: dict[str, Origin] = {}

    def read(self, path: str, stack: tuple[str, ...] = (), at: Origin | None = None) -> Iterator[IniEntry]:
        """Entries of ``path`` and of what it includes (the section carries across includes, as in FPM)."""
        real = os.path.realpath(path)
        if real in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            assert at is not None
            chain = [*stack[stack.index(real) :], real] if real in stack else [real]
            raise ConfigError(at.file, at.line, "include cycle: " + " -> ".join(chain))
        text = read_config_text(path, *((at.file, at.line) if at else ("", 0)), self.budget)
        self.files.append(path)
        for lineno, line in enumerate(text.splitlines(), 1):
            kind, key, value = parse_ini_line(line, path, lineno)
            if kind == "section" and key is not None:
                self.section = key
                self.section_origins.setdefault(key, Origin(path, lineno))
            elif kind == "entry" and key is not None and value is not None:
                origin = Origin(path, lineno)
                if key == "include":
                    # php-fpm: relative includes are prefixed by -p (or /usr); see ``load_fpm_conf``
                    for inc in resolve_pattern(value, (self.prefix, os.path.dirname(path)), self.root):
                        yield from self.read(inc, (*stack, real), origin)
                else:
                    yield IniEntry(self.section, key, value, origin)


__all__ = ["ConfigError", "IniEntry", "IniReader", "parse_ini_line"]
