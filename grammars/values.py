"""Typed tokens shared by the log grammars, and ``typed``: a named value with its conversion.

``typed(name, expr, convert)`` is the one way a grammar turns matched text into a typed field.
The conversion is recorded on the element, so ``grammars.lowering`` applies the very same
function to the regex group: the fast path and pyparsing cannot disagree about types.
A conversion that raises ``ValueError`` makes the token fail to match (``pp.ParseException``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final

import pyparsing as pp

from grammars.portable_regex import portable

Converter = Callable[[str], Any]

# Attribute carrying (convert, form) on a typed element; survives ``copy()`` (leave_whitespace).
TYPED_ATTR: Final = "badgateway_typed"
LEAF: Final = "leaf"  # the element is the token itself: its text is the value
WRAPPED: Final = "wrapped"  # And(start marker, expr, end marker): the original text is the value

_TEXT_LEAVES: Final = (pp.Regex, pp.Word, pp.Literal, pp.Keyword)


def _is_text_leaf(expr: pp.ParserElement) -> bool:
    """True when the token ``expr`` yields is exactly the text it matched."""
    return (
        isinstance(expr, _TEXT_LEAVES)
        and not isinstance(expr, (pp.CaselessLiteral, pp.CaselessKeyword, pp.Empty))
        and not expr.parseAction
        and not (isinstance(expr, pp.Regex) and (expr.asMatch or expr.asGroupList))
    )


def typed(name: str, expr: pp.ParserElement, convert: Converter, guard: str | None = None) -> pp.ParserElement:
    """``expr`` named ``name``, its matched text converted by ``convert``.

    Names inside ``expr`` stay visible (``request`` keeps ``method``/``uri``/``protocol``).
    The value is set in place rather than returned, because a parse action returning
    ``None`` (nginx ``-``) would otherwise mean "no change" to pyparsing.

    ``guard``: a regex that, matched where ``expr`` starts, shows that ``convert`` will not raise on the text
    ``expr`` matches there (``""``: it never raises on any text ``expr`` matches). A block scan of the lowered
    grammar (``FastParser.scanner``) checks it in the regex instead of converting each value it has no use for.
    """

    def convert_in_place(text_at: str, loc: int, tokens: pp.ParseResults) -> None:
        try:
            value = convert(tokens[0])
        except (ValueError, OverflowError) as exc:
            raise pp.ParseException(text_at, loc, f"bad {name}: {exc}") from None
        tokens[0] = value
        tokens[name] = value

    if _is_text_leaf(expr):
        element = expr.copy().add_parse_action(convert_in_place)
        form = LEAF
    else:
        element = pp.original_text_for(expr, as_string=False).add_parse_action(convert_in_place)
        form = WRAPPED
    element = element.set_results_name(name)
    setattr(element, TYPED_ATTR, (convert, form))
    if guard is not None:
        setattr(element, GUARD_ATTR, guard)
    if not element.customName:
        element.set_name(name)
    return element


GUARD_ATTR: Final = "badgateway_guard"


def typed_guard(element: pp.ParserElement) -> str | None:
    """The ``guard`` given to ``typed`` for ``element``, if any."""
    guard: str | None = getattr(element, GUARD_ATTR, None)
    return guard


def typed_info(element: pp.ParserElement) -> tuple[Converter, str] | None:
    """``(convert, form)`` when ``element`` was made by ``typed``, else ``None``."""
    info: tuple[Converter, str] | None = getattr(element, TYPED_ATTR, None)
    return info


# Attribute carrying (expression template, {placeholder: converter}) so the lowered record builder
# can inline a small converter instead of calling it: ``{v}`` is the group text.
INLINE_ATTR: Final = "badgateway_inline"


InlineForm = tuple[str, dict[str, Any]]


def inline_form(convert: Converter) -> InlineForm | None:
    """The inlinable form of ``convert`` (see ``INLINE_ATTR``), if it has one."""
    form: InlineForm | None = getattr(convert, INLINE_ATTR, None)
    return form


def set_inline(convert: Converter, template: str, **inner: Any) -> None:
    """Declare that ``template`` (Python expression over ``{v}`` and ``inner``) equals ``convert({v})``."""
    setattr(convert, INLINE_ATTR, (template, inner))


# Attribute marking a converter that never raises, whatever text it is given: a probe of the lowered
# grammar (``record_builder.probe_source``) may skip it and still know the record would build.
TOTAL_ATTR: Final = "badgateway_total"


def set_total(convert: Converter) -> None:
    """Declare that ``convert`` never raises on any ``str``."""
    setattr(convert, TOTAL_ATTR, True)


def is_total(convert: Converter) -> bool:
    """True when ``convert`` was declared never to raise (``set_total``)."""
    return getattr(convert, TOTAL_ATTR, False) is True


def nullable(convert: Converter) -> Converter:
    """Wrap ``convert`` so that nginx's ``-`` (no value) becomes ``None``."""

    def convert_or_none(text: str) -> Any:
        return None if text == "-" else convert(text)

    convert_or_none.__name__ = f"nullable_{getattr(convert, '__name__', 'convert')}"
    set_inline(convert_or_none, "(None if {v} == '-' else {f}({v}))", f=convert)
    return convert_or_none


# HTTP status codes and "-": a dict hit is cheaper than int() on every line
_STATUS_CODES: Final[dict[str, int | None]] = {"-": None, **{str(code): code for code in range(1000)}}


def status_code(text: str) -> int | None:
    """``502`` → 502, ``-`` → None (a status, or one entry of ``$upstream_status``)."""
    return _STATUS_CODES[text] if text in _STATUS_CODES else int(text)


set_inline(status_code, "({s}[{v}] if {v} in {s} else {f}({v}))", s=_STATUS_CODES, f=int)


def dash_none(text: str) -> str | None:
    """``-`` → ``None``; any other text unchanged."""
    return None if text == "-" else text


set_inline(dash_none, "(None if {v} == '-' else {v})")
set_total(dash_none)


_QUOTED_ESCAPE: Final = re.compile(r'\\(["\\])')


def text(value: str) -> str:
    """The matched text as is (a named value that needs no conversion)."""
    return value


set_inline(text, "{v}")
set_total(text)


def unescape(body: str) -> str:
    """A quoted body: ``\\"`` and ``\\\\`` undone, ``\\xHH`` kept as logged (docs/contracts.md)."""
    return _QUOTED_ESCAPE.sub(r"\1", body) if "\\" in body else body


def unquote(quoted: str) -> str:
    """``"a \\"b\\" \\x16"`` → ``a "b" \\x16``."""
    return unescape(quoted[1:-1])


def body_or_none(body: str) -> str | None:
    """A quoted body (quotes already off) where ``-`` means absent."""
    return None if body == "-" else unescape(body)


set_inline(body_or_none, "(None if {v} == '-' else {v} if '\\\\' not in {v} else {f}({v}))", f=unescape)
set_total(unescape)
set_total(body_or_none)


def unquote_or_none(quoted: str) -> str | None:
    """A quoted value where ``"-"`` means absent."""
    return body_or_none(quoted[1:-1])


_MONTHS: Final = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


@lru_cache(maxsize=4096)
def time_local(text: str) -> datetime:
    """``10/Oct/2000:13:55:36 -0700`` → aware datetime; cached, neighbouring lines share a second."""
    month = _MONTHS.get(text[3:6])
    if month is None:
        raise ValueError(f"unknown month {text[3:6]!r}")
    sign = -1 if text[21] == "-" else 1
    offset_min = sign * (int(text[22:24]) * 60 + int(text[24:26]))
    return datetime(
        int(text[7:11]),
        month,
        int(text[0:2]),
        int(text[12:14]),
        int(text[15:17]),
        int(text[18:20]),
        tzinfo=_tz(offset_min),
    )


@lru_cache(maxsize=64)
def _tz(offset_min: int) -> timezone:
    return UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))


@lru_cache(maxsize=4096)
def time_iso8601(text: str) -> datetime:
    """``2000-10-10T13:55:36+00:00`` → aware datetime (a naive one is refused)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("time_iso8601 without offset")
    return value


def msec_time(text: str) -> datetime:
    """``1700000000.123`` (``$msec``) → aware UTC datetime."""
    return datetime.fromtimestamp(float(text), UTC)


def _token(pattern: str, name: str) -> pp.ParserElement:
    return pp.Regex(portable(pattern)).leave_whitespace().set_name(name)


# integer ::= digit { digit }
# 502
INTEGER: Final = _token(r"\d++", "integer")

# float ::= digit { digit } [ "." digit { digit } ]
# 0.001
FLOAT: Final = _token(r"\d++(?:\.\d++)?+", "float")

# ipv4 ::= octet "." octet "." octet "." octet
# 192.168.33.1
IPV4: Final = _token(r"(?:\d{1,3}\.){3}\d{1,3}(?![\w.])", "ipv4")

# ipv6 ::= hex-and-colons [ "." dotted ipv4 tail ]
# 2a03:0000:10ff:f00f:0000:0000:0:8000
IPV6: Final = _token(r"(?=[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?+(?![\w.:])", "ipv6")

# address ::= ipv4 | ipv6 | hostname | unix-socket | "-"
# unix:/run/php/www.sock
ADDRESS: Final = _token(r"[^\s,\"]++", "address")

# time_local ::= DD "/" Mon "/" YYYY ":" HH ":" MM ":" SS " " ("+" | "-") HHMM
# 10/Oct/2000:13:55:36 -0700
TIME_LOCAL: Final = _token(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", "time_local")

# time_iso8601 ::= YYYY "-" MM "-" DD "T" HH ":" MM ":" SS ( "+" | "-" ) HH ":" MM
# 2000-10-10T13:55:36+00:00
TIME_ISO8601: Final = _token(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?+(?:[+-]\d\d:\d\d|Z)", "time_iso8601")

# msec ::= seconds "." millis
# 1700000000.123
MSEC: Final = _token(r"\d++\.\d{3}", "msec")

# quoted ::= '"' { char - ('"' | "\") | "\" char } '"'   (possessive and unrolled: linear on hostile lines)
# "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" \x16\x03"
QUOTED: Final = _token(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', "quoted string")

# dash ::= "-"
# -
DASH: Final = _token(r"-", "dash")
