"""An nginx ``log_format`` string → the pyparsing grammar of the lines it writes.

The format is literal text and ``$variable`` / ``${variable}`` references. Literal text is kept
exactly (no whitespace skipping anywhere: nginx writes what the format says). Each variable
becomes a typed token (``docs/contracts.md``); a variable the contract does not type is text:
inside ``"…"`` a quoted body, elsewhere a run of characters up to the next literal.
nginx writes ``-`` for an empty or unset variable, so every typed token also accepts ``-`` → ``None``.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Final

import orjson
import pyparsing as pp

from grammars import values
from grammars.portable_regex import portable

ESCAPES: Final = ("default", "json", "none")

# $name or ${name}; nginx variable names are letters, digits and underscores
_VARIABLE: Final = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))")

INT_VARIABLES: Final = frozenset(
    {"status", "body_bytes_sent", "bytes_sent", "connection", "connection_requests", "request_length", "pid"}
)
FLOAT_VARIABLES: Final = frozenset({"request_time", "gzip_ratio"})
TIME_VARIABLES: Final = frozenset({"time_local", "time_iso8601", "msec"})
# comma/colon separated, one entry per upstream tried: `10.0.0.1:9000, unix:/run/php/a.sock : 10.0.0.2:9000`
ADDRESS_LISTS: Final = frozenset({"upstream_addr"})
INT_LISTS: Final = frozenset(
    {"upstream_status", "upstream_response_length", "upstream_bytes_received", "upstream_bytes_sent"}
)
FLOAT_LISTS: Final = frozenset({"upstream_response_time", "upstream_connect_time", "upstream_header_time"})

# the client address: one token (never a `host ip` pair), or a proxy-written `a, b, c` list kept as text
ADDRESS_VARIABLES: Final = frozenset({"remote_addr", "realip_remote_addr", "server_addr"})
_ADDRESS: Final = r'[^\s",{stop}]++(?:, [^\s",{stop}]++)*+'  # {stop}: the next literal's first character

_INT: Final = r"\d++|-"
_FLOAT: Final = r"\d++(?:\.\d++)?+|-"
_LIST_SPLIT: Final = re.compile(r", | : ")
_LIST_CLOSERS: Final = frozenset("])}>|;'")
# list ::= entry { (", " | " : ") entry }   ({stop}: the next literal's first character, `[$upstream_addr]`)
_LIST: Final = r'[^\s,"{stop}]++(?:(?:, | : )[^\s,"{stop}]++)*+'

# Guards (values.typed): matched where the token starts, the conversion of its text cannot fail. int() refuses
# more digits than sys.get_int_max_str_digits(), which may be set at run time but never below
# str_digits_check_threshold (640); float() takes any _FLOAT; a list's entries must each convert.
_SAFE_DIGITS: Final = sys.int_info.str_digits_check_threshold
_INT_ENTRY: Final = rf"-|\d{{1,{_SAFE_DIGITS}}}(?!\d)"
_FLOAT_ENTRY: Final = r"-|\d+(?:\.\d+)?"


def _list_guard(entry: str, stop: str) -> str:
    # every entry up to where the list token stops (no entry character, nor a separator and an entry, follows)
    char = rf'[^\s,"{stop}]'
    return rf"(?:{entry})(?:(?:, | : )(?:{entry}))*+(?!{char}|, {char}| : {char})"


# request ::= method " " uri " " protocol   (anything else stays raw: "-", "", TLS bytes, "SSH-2.0-Go")
METHOD: Final = r"[A-Za-z][A-Za-z0-9_-]*+"
URI: Final = r'[^\s"]++'  # a `\"` inside makes the request raw: the parts need a plain URI
PROTOCOL: Final = r"HTTP/\d(?:\.\d)?+"
REQUEST_PARTS: Final = re.compile(rf"(?P<method>{METHOD}) (?P<uri>{URI}) (?P<protocol>{PROTOCOL})\Z")


def variables_of(fmt: str) -> list[str | tuple[str]]:
    """Split ``fmt`` into literal strings and ``(variable,)`` tuples, in order."""
    pieces: list[str | tuple[str]] = []
    pos = 0
    for match in _VARIABLE.finditer(fmt):
        if match.start() > pos:
            pieces.append(fmt[pos : match.start()])
        pieces.append((match["braced"] or match["bare"],))
        pos = match.end()
    if pos < len(fmt):
        pieces.append(fmt[pos:])
    return pieces


def _split_list(convert: values.Converter) -> values.Converter:
    def split(text: str) -> list[object] | None:
        if text == "-":
            return None
        if " " not in text:  # one upstream tried: the common case (entries have no blanks)
            return [convert(text)]
        # str methods, not re.split: this runs for every line that tried two upstreams
        return [None if item == "-" else convert(item) for item in text.replace(" : ", ", ").split(", ")]

    split.__name__ = f"list_of_{getattr(convert, '__name__', 'item')}"
    # inlined in the lowered builder for "-" and one upstream tried (an entry has no blank:
    # a blank means a separator); the item converter is inlined too when it can be
    inner: dict[str, object] = {"split": split}
    form = values.inline_form(convert)
    if convert is str:
        item = "{v}"
    elif form is not None:
        item, item_inner = form
        inner.update(item_inner)
    else:
        item, inner["item"] = "{item}({v})", convert
    values.set_inline(split, f"(None if {{v}} == '-' else [{item}] if ' ' not in {{v}} else {{split}}({{v}}))", **inner)
    return split


_address_list: Final = _split_list(str)
_int_list: Final = _split_list(int)
_status_list: Final = _split_list(values.status_code)
_float_list: Final = _split_list(float)
_nullable_int: Final = values.nullable(int)
_nullable_float: Final = values.nullable(float)


def json_loads(text: str) -> Any:
    """``text`` as JSON; raises ``ValueError``. escape=json escapes quotes, backslashes and control bytes but
    writes a byte that is not UTF-8 as it came, which a line read with surrogateescape carries as a lone surrogate:
    orjson refuses those, the standard library (slower, so only then) keeps them."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if text.isascii():
            raise
        return json.loads(text, parse_constant=_no_constant)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # as orjson: no NaN, Infinity


def json_unquote(text: str) -> str | None:
    """A quoted value written with ``escape=json`` (``\\"``, ``\\\\``, ``\\uXXXX``) decoded; ``-`` → None."""
    if "\\" in text:
        try:
            decoded = json_loads(text)
        except ValueError:
            decoded = text[1:-1]  # not valid JSON escaping: keep it as logged
        body = decoded if isinstance(decoded, str) else text[1:-1]
    else:
        body = text[1:-1]
    return None if body == "-" else body


def _quoted_body(escape: str, closer: str) -> str:
    """The text of a ``"…"`` value (quotes included); ``closer`` is what must follow its end quote."""
    if escape == "none":
        # nothing is escaped: a quote ends the value only where the format's next literal follows
        return rf'"(?:[^"]++|"(?!{closer}))*+"'
    if escape == "json":
        return r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'  # `\"` and `\\` escaped: unrolled, one run per plain value
    # default: nginx writes `"` and `\` as \xHH, so a raw quote ends the value; a `\"` from another
    # writer is kept as content. [^"] (one literal) scans twice as fast as a two-character class.
    return r'"[^"]*+(?:(?<=\\)"[^"]*+)*+"'


def _token(pattern: str, name: str) -> pp.ParserElement:
    return pp.Regex(portable(pattern)).set_name(name)


def _request(quoted: bool, escape: str, closer: str) -> pp.ParserElement:
    """``$request`` → request (raw) plus method/uri/protocol when it has that shape."""
    end = '"' if quoted else r"(?=\s|\Z)"
    parts = (
        _token(METHOD, "method")("method")
        + pp.Literal(" ")
        # with escape=json a backslash means an escape to decode: such a request stays raw (decoded)
        + _token((r'[^\s"\\]++' if escape == "json" else URI) if quoted else r"\S++", "uri")("uri")
        + pp.Literal(" ")
        + _token(PROTOCOL, "protocol")("protocol")
        + pp.FollowedBy(pp.Regex(end))
    )
    if not quoted:
        return values.typed("request", parts, values.text) | values.typed(
            "request", _token(r"\S++", "raw request"), str
        )
    raw = _token(_quoted_body(escape, closer)[1:-1], "raw request")
    convert = _raw_request_json if escape == "json" else values.unescape
    return values.typed("request", parts, values.text) | values.typed("request", raw, convert)


def _raw_request_json(body: str) -> str:
    return json_unquote(f'"{body}"') or "-"


def variable_element(
    name: str, before: str, after: str, escape: str, last: bool, time_field: bool, closes_line: bool = False
) -> pp.ParserElement:
    """The token for ``$name`` between the literals ``before`` and ``after`` (``closes_line``: ``after`` is
    the format's last literal)."""
    quoted = before.endswith('"') and after.startswith('"')
    # escape=none: a quote inside the value is raw; the value's own quote is the one its literal follows (the
    # last field's: the one that ends the line)
    closer = (re.escape(after[1:].rstrip()) + r"\s*+\Z" if closes_line else re.escape(after[1:])) if quoted else ""
    if escape == "json" and name not in TIME_VARIABLES and name != "request":
        # escape=json writes nothing, not "-", for a variable with no value: `"upstream_addr":""`
        return _json_empty(_variable(name, after, escape, last, quoted, closer))
    return _variable(name, after, escape, last, quoted, closer, time_field)


def _json_empty(element: pp.ParserElement) -> pp.ParserElement:
    """A typed variable of an escape=json format that may also be empty (→ ``None``)."""
    info = values.typed_info(element)
    assert info is not None and isinstance(element, pp.Regex)
    convert = info[0]
    if values.is_total(convert):
        return values.typed(element.resultsName, _token(f"(?:{element.pattern})?+", element.customName), convert, "")

    def empty_none(text: str) -> Any:
        return None if text == "" else convert(text)

    empty_none.__name__ = f"json_{getattr(convert, '__name__', 'value')}"
    return values.typed(element.resultsName, _token(f"(?:{element.pattern})?+", element.customName), empty_none)


def _variable(
    name: str, after: str, escape: str, last: bool, quoted: bool, closer: str, time_field: bool = False
) -> pp.ParserElement:
    if name == "request":
        return _request(quoted, escape, closer)
    if name == "status":
        return values.typed(name, _token(_INT, name), values.status_code, _INT_ENTRY)
    if name in INT_VARIABLES:
        return values.typed(name, _token(_INT, name), _nullable_int, _INT_ENTRY)
    if name in FLOAT_VARIABLES:
        return values.typed(name, _token(_FLOAT, name), _nullable_float, "")
    if name in ADDRESS_VARIABLES:
        stop = re.escape(after[0]) if after and not after[0].isspace() else ""  # `[Client $remote_addr]`
        return values.typed(name, _token(_ADDRESS.format(stop=stop), name), values.dash_none)
    if name in TIME_VARIABLES:
        return _time(name, time_field)
    # a list ends at a closing bracket the next literal starts with: `[$upstream_addr]`, `($upstream_status)`
    # (not at ":" or "/", which addresses hold)
    stop = re.escape(after[0]) if after and after[0] in _LIST_CLOSERS else ""
    listed = _LIST.format(stop=stop)
    if name in ADDRESS_LISTS:
        return values.typed(name, _token(listed, name), _address_list, "")
    if name == "upstream_status":
        return values.typed(name, _token(listed, name), _status_list, _list_guard(_INT_ENTRY, stop))
    if name in INT_LISTS:
        return values.typed(name, _token(listed, name), _int_list, _list_guard(_INT_ENTRY, stop))
    if name in FLOAT_LISTS:
        return values.typed(name, _token(listed, name), _float_list, _list_guard(_FLOAT_ENTRY, stop))
    if quoted:
        # the quotes belong to the format's literals; the body is matched up to the closing one
        body = _quoted_body(escape, closer)[1:-1]
        convert = _json_body if escape == "json" else values.body_or_none
        return values.typed(name, _token(body, name), convert)
    return values.typed(name, _token(_text_until(after, last), name), values.dash_none)


def _json_body(body: str) -> str | None:
    return json_unquote(f'"{body}"')


def _text_until(after: str, last: bool) -> str:
    """An unquoted text value: up to the next literal's first character."""
    if last:
        return r"(?:\S++|\s++(?=\S))*+"  # the rest of the line, trailing whitespace left over
    if not after:
        return r"\S*+"  # another variable follows at once: nginx gives no boundary, take a word
    first = re.escape(after[0])  # [^c]: one literal, the fast scan in the re engine
    if len(after) == 1:
        return rf"[^{first}]*+"
    # everything up to the first place the next literal starts (an X-Forwarded-For list before " - ")
    return rf"[^{first}]*+(?:{first}(?!{re.escape(after[1:])})[^{first}]*+)*+"


_TIME_PATTERNS: Final[dict[str, tuple[str, values.Converter]]] = {
    "time_local": (r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}", values.time_local),
    "time_iso8601": (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d++)?+(?:[+-]\d\d:?\d\d|Z)?+", values.time_iso8601),
    "msec": (r"\d++\.\d++", values.msec_time),
}


def _time(name: str, time_field: bool) -> pp.ParserElement:
    """A time variable; the first one in the format also gives ``time`` (aware datetime)."""
    pattern, to_datetime = _TIME_PATTERNS[name]
    token = _token(pattern, name)
    convert: values.Converter = float if name == "msec" else to_datetime
    guard = "" if name == "msec" else None  # float() takes any \d++\.\d++
    if not time_field:
        return values.typed(name, token, convert, guard)
    # nginx always sets its time variables: no "-" alternative
    return values.typed(name, values.typed("time", token, to_datetime), convert, guard)


def format_grammar(fmt: str, escape: str = "default") -> tuple[pp.ParserElement, tuple[str, ...]]:
    """The grammar of lines written by ``fmt`` and the variables it uses, in order."""
    if escape not in ESCAPES:
        raise ValueError(f"escape must be one of {ESCAPES}, not {escape!r}")
    pieces = variables_of(fmt)
    if not pieces:
        raise ValueError("empty log_format")
    elements: list[pp.ParserElement] = []
    used: list[str] = []
    time_given = False
    for index, piece in enumerate(pieces):
        if isinstance(piece, str):
            stripped = piece.rstrip()
            if index == len(pieces) - 1 and stripped != piece:
                # trailing blanks in a format are often trimmed by shippers and editors
                if stripped:
                    elements.append(pp.Literal(stripped))
                elements.append(pp.Regex(r"[ \t]*+").set_name("trailing blanks"))
            else:
                elements.append(pp.Literal(piece))
            continue
        (name,) = piece
        before = pieces[index - 1] if index > 0 and isinstance(pieces[index - 1], str) else ""
        after_piece = pieces[index + 1] if index + 1 < len(pieces) else ""
        after = after_piece if isinstance(after_piece, str) else ""
        last = index + 1 >= len(pieces) or (index + 2 == len(pieces) and not after.strip())
        time_field = name in TIME_VARIABLES and not time_given
        time_given = time_given or time_field
        closes_line = index + 2 == len(pieces) and isinstance(after_piece, str)
        elements.append(variable_element(name, str(before), after, escape, last, time_field, closes_line))
        used.append(name)
    grammar = pp.And(elements).leave_whitespace()
    return grammar, tuple(used)
