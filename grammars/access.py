"""NGINX access log: lines of any ``log_format`` (text or JSON) into typed fields.

``compile_log_format`` builds the pyparsing grammar of a format (``grammars.log_format``), the
single source of truth, and lowers it to one regex (``grammars.lowering``) for the hot path.
Fields follow ``docs/contracts.md``: one per variable, typed; ``request`` adds method/uri/protocol;
the first time variable adds ``time`` (aware datetime).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from grammars import log_format, lowering, values
from grammars.result import Fields, ParseError

# combined ::= remote_addr " - " remote_user " [" time_local '] "' request '" ' status " " bytes ' "' referer '" "' agent '"'
# 127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /slow.php?id=42 HTTP/1.1" 502 157 "-" "curl/8.5.0"
COMBINED_FORMAT: Final = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'
)
# main ::= combined ' "' http_x_forwarded_for '"'
# 5.160.157.20 - - [22/Jan/2019:03:56:14 +0330] "GET /image/4158 HTTP/1.1" 200 ... "Mozilla/5.0" "-"
MAIN_FORMAT: Final = COMBINED_FORMAT + ' "$http_x_forwarded_for"'
# ingress-nginx ``upstreaminfo`` (controller >= 0.25: with the alternative upstream name)
UPSTREAMINFO_FORMAT: Final = (
    COMBINED_FORMAT + " $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]"
    " $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"
)


class AccessFormat:
    """A compiled ``log_format``: ``parse(line) -> Fields | ParseError`` (never raises).

    ``grammar`` is the pyparsing element (the truth); ``fast`` the lowered regex parser, or
    ``None`` when the format could not be lowered (pyparsing alone then, correct but slower).
    """

    parse: Callable[[str], Fields | ParseError]

    def __init__(self, name: str, fmt: str, escape: str = "default") -> None:
        self.name = name
        self.fmt = fmt
        self.escape = escape
        self.grammar, self.variables = log_format.format_grammar(fmt, escape)
        self.grammar.set_name(f"log_format {name}")
        grammar = self.grammar

        def slow(line: str) -> Fields | ParseError:
            return lowering.parse_with(grammar, None, line)  # pyparsing: its answer or where it failed

        self.fast: lowering.FastParser | None
        try:
            self.fast = lowering.FastParser(grammar)
        except lowering.LoweringError:
            self.fast = None
        # the generated builder falls back to pyparsing itself: no wrapper frame per line
        self.parse = slow if self.fast is None else self.fast.with_fallback(slow)

    def __repr__(self) -> str:
        return f"AccessFormat({self.name!r}, {self.fmt!r}, escape={self.escape!r})"


def compile_log_format(fmt: str, escape: str = "default", name: str = "custom") -> AccessFormat:
    """Compile an nginx ``log_format`` string (``escape`` = ``default`` | ``json`` | ``none``).

    Raises ``ValueError`` for an empty format or an unknown escape.
    """
    return AccessFormat(name, fmt, escape)


COMBINED: Final = compile_log_format(COMBINED_FORMAT, name="combined")
MAIN: Final = compile_log_format(MAIN_FORMAT, name="main")
UPSTREAMINFO: Final = compile_log_format(UPSTREAMINFO_FORMAT, name="upstreaminfo")
# A custom log_format that starts like combined and adds fields we were not told about (no nginx.conf at
# hand): the combined part typed, the rest kept as text, so such logs still join instead of dead-lettering.
COMBINED_PLUS_FORMAT: Final = COMBINED_FORMAT + " $combined_rest"
COMBINED_PLUS: Final = compile_log_format(COMBINED_PLUS_FORMAT, name="combined_plus")


def _convert_json_value(name: str, value: Any) -> Any:
    """One JSON access value, typed like the same variable in a text format."""
    if value is None or value == "" or value == "-":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value
    text = str(value)
    if name in log_format.INT_VARIABLES:
        return int(value) if isinstance(value, int) else int(text)
    if name in log_format.FLOAT_VARIABLES or name == "msec":
        return float(value)
    if name == "time_local":
        return values.time_local(text)
    if name == "time_iso8601":
        return values.time_iso8601(text)
    if name in log_format.ADDRESS_LISTS:
        return _split(text, str)
    if name in log_format.INT_LISTS:
        return _split(text, int)
    if name in log_format.FLOAT_LISTS:
        return _split(text, float)
    return value


def _split(text: str, convert: Callable[[str], Any]) -> list[Any]:
    return [None if item == "-" else convert(item) for item in log_format._LIST_SPLIT.split(text)]


def _json_time(fields: Fields, raw: dict[str, Any]) -> Any:
    for name in ("time_local", "time_iso8601"):
        if fields.get(name) is not None:
            return fields[name]
    if fields.get("msec") is not None:
        return values.msec_time(str(fields["msec"]))
    for key in ("@timestamp", "time", "timestamp"):  # a format's own key for $time_iso8601
        stamp = raw.get(key)
        if isinstance(stamp, str):
            try:
                return values.time_iso8601(stamp)
            except ValueError:
                continue
    return None


def parse_json_access(line: str) -> Fields | ParseError:
    """A JSON access line (``escape=json`` formats): keys named like nginx variables typed the same way.

    Unknown keys are kept as they are. Never raises.
    """
    try:
        raw = log_format.json_loads(line)
    except ValueError as exc:
        return ParseError(f"not JSON: {exc}", getattr(exc, "pos", 0) + 1, line)
    if not isinstance(raw, dict):
        return ParseError("JSON access line is not an object", 1, line)
    fields: Fields = {}
    try:
        for key, value in raw.items():
            fields[key] = _convert_json_value(key, value)
        fields["time"] = _json_time(fields, raw)
    except (ValueError, TypeError, OverflowError) as exc:
        return ParseError(f"bad value: {exc}", 1, line)
    request = fields.get("request")
    parts = log_format.REQUEST_PARTS.match(request) if isinstance(request, str) else None
    fields["method"] = parts["method"] if parts else fields.get("request_method")
    fields["uri"] = parts["uri"] if parts else fields.get("request_uri")
    fields["protocol"] = parts["protocol"] if parts else fields.get("server_protocol")
    return fields


__all__ = [
    "AccessFormat",
    "COMBINED",
    "COMBINED_PLUS",
    "MAIN",
    "UPSTREAMINFO",
    "compile_log_format",
    "parse_json_access",
]
