"""Shared typed tokens, converters and ``typed``: tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyparsing as pp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grammars import values

# (description, token, text, matches)
TOKENS: list[tuple[str, pp.ParserElement, str, bool]] = [
    ("integer", values.INTEGER, "502", True),
    ("integer refuses a sign", values.INTEGER, "-1", False),
    ("float with fraction", values.FLOAT, "0.001", True),
    ("float without fraction", values.FLOAT, "60", True),
    ("float refuses a bare dot", values.FLOAT, ".5", False),
    ("ipv4", values.IPV4, "192.168.33.1", True),
    ("ipv4 refuses a fifth part", values.IPV4, "1.2.3.4.5", False),
    ("ipv6 loopback", values.IPV6, "::1", True),
    ("ipv6 long form", values.IPV6, "2a03:0000:10ff:f00f:0000:0000:0:8000", True),
    ("ipv6 with v4 tail", values.IPV6, "::ffff:10.0.0.1", True),
    ("ipv6 refuses a host name", values.IPV6, "example.com", False),
    ("address: unix socket", values.ADDRESS, "unix:/run/php/www.sock", True),
    ("address stops at a comma", values.ADDRESS, "10.0.0.1:9000, 10.0.0.2:9000", False),
    ("time_local", values.TIME_LOCAL, "10/Oct/2000:13:55:36 -0700", True),
    ("time_local without offset", values.TIME_LOCAL, "10/Oct/2000:13:55:36", False),
    ("time_iso8601", values.TIME_ISO8601, "2000-10-10T13:55:36+00:00", True),
    ("time_iso8601 Z", values.TIME_ISO8601, "2000-10-10T13:55:36Z", True),
    ("msec", values.MSEC, "1700000000.123", True),
    ("msec needs milliseconds", values.MSEC, "1700000000", False),
    ("quoted plain", values.QUOTED, '"Mozilla/5.0 (X11)"', True),
    ("quoted with escapes", values.QUOTED, r'"a \"b\" \x16\x03"', True),
    ("quoted unterminated", values.QUOTED, '"abc', False),
    ("quoted escaped final quote", values.QUOTED, '"abc\\"', False),
    ("dash", values.DASH, "-", True),
]


@pytest.mark.parametrize(("description", "token", "text", "matches"), TOKENS, ids=[t[0] for t in TOKENS])
def test_tokens(description: str, token: pp.ParserElement, text: str, matches: bool) -> None:
    try:
        token.parse_string(text, parse_all=True)
    except pp.ParseException:
        assert not matches
    else:
        assert matches
    assert token.customName  # every shared token is named for error messages


MINUS_7 = timezone(timedelta(hours=-7))

# (description, converter, text, expected value or the exception it raises)
CONVERSIONS: list[tuple[str, values.Converter, str, Any]] = [
    (
        "time_local keeps the offset",
        values.time_local,
        "10/Oct/2000:13:55:36 -0700",
        datetime(2000, 10, 10, 13, 55, 36, tzinfo=MINUS_7),
    ),
    ("time_local UTC", values.time_local, "24/Nov/2026:05:42:00 +0000", datetime(2026, 11, 24, 5, 42, tzinfo=UTC)),
    (
        "time_local +0530",
        values.time_local,
        "24/Nov/2026:05:42:00 +0530",
        datetime(2026, 11, 24, 5, 42, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
    ("time_local bad month", values.time_local, "10/Foo/2000:13:55:36 -0700", ValueError),
    ("time_local impossible day", values.time_local, "31/Feb/2000:13:55:36 -0700", ValueError),
    (
        "time_iso8601",
        values.time_iso8601,
        "2000-10-10T13:55:36+02:00",
        datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=2))),
    ),
    ("time_iso8601 naive refused", values.time_iso8601, "2000-10-10T13:55:36", ValueError),
    ("msec", values.msec_time, "0.500", datetime(1970, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ("unquote", values.unquote, r'"a \"b\" \\ \x16"', r'a "b" \ \x16'),
    ("unquote_or_none dash", values.unquote_or_none, '"-"', None),
    ("body_or_none", values.body_or_none, r"x\"y", 'x"y'),
    ("dash_none", values.dash_none, "-", None),
    ("dash_none keeps text", values.dash_none, "alice", "alice"),
    ("nullable int", values.nullable(int), "-", None),
    ("nullable int value", values.nullable(int), "42", 42),
    ("nullable int garbage", values.nullable(int), "4x", ValueError),
    ("status code", values.status_code, "502", 502),
    ("status code dash", values.status_code, "-", None),
    ("status code big", values.status_code, "1234", 1234),
    ("text", values.text, "as is", "as is"),
]


@pytest.mark.parametrize(("description", "convert", "text", "expected"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_conversions(description: str, convert: values.Converter, text: str, expected: Any) -> None:
    if isinstance(expected, type) and issubclass(expected, Exception):
        with pytest.raises(expected):
            convert(text)
    else:
        assert convert(text) == expected


def test_time_local_is_cached() -> None:
    values.time_local.cache_clear()
    first = values.time_local("24/Nov/2026:05:42:00 +0000")
    assert values.time_local("24/Nov/2026:05:42:00 +0000") is first
    assert values.time_local.cache_info().hits == 1


INLINED = [
    values.nullable(int),
    values.nullable(float),
    values.dash_none,
    values.text,
    values.body_or_none,
    values.status_code,
]


@pytest.mark.parametrize("convert", INLINED, ids=lambda c: getattr(c, "__name__", "convert"))
@given(st.one_of(st.sampled_from(["-", "", "0", "502", "1.5", r"a\"b", "\\"]), st.text(max_size=8)))
def test_inline_forms_equal_their_function(convert: values.Converter, text: str) -> None:
    """The lowered builder inlines these templates: they must give what the function gives."""
    form = values.inline_form(convert)
    assert form is not None
    template, inner = form
    expr = template.format(v="v", **{key: key for key in inner})

    def run(fn: Any) -> Any:
        try:
            return ("ok", repr(fn()))  # repr: float("nan") is not equal to itself
        except (ValueError, TypeError) as exc:
            return ("error", type(exc))

    assert run(lambda: eval(expr, {**inner, "v": text})) == run(lambda: convert(text))  # noqa: S307


# ---------------------------------------------------------------- typed
def test_typed_leaf_converts_and_records() -> None:
    element = values.typed("status", pp.Regex(r"\d+|-"), values.nullable(int))
    assert element.parse_string("502")["status"] == 502
    assert element.parse_string("-").get("status") is None  # None stays None (set in place)
    info = values.typed_info(element)
    assert info is not None and info[1] == values.LEAF


def test_typed_wrapped_keeps_inner_names() -> None:
    inner = pp.Regex("[A-Z]+")("method") + pp.Literal(" ").leave_whitespace() + pp.Regex(r"\S+")("uri")
    element = values.typed("request", inner, str.lower)
    result = element.parse_string("GET /x")
    assert (result["request"], result["method"], result["uri"]) == ("get /x", "GET", "/x")
    info = values.typed_info(element)
    assert info is not None and info[1] == values.WRAPPED


def test_typed_value_error_is_a_located_parse_failure() -> None:
    grammar = pp.Literal("at ") + values.typed("time", values.TIME_LOCAL, values.time_local)
    with pytest.raises(pp.ParseException) as caught:
        grammar.parse_string("at 31/Feb/2000:13:55:36 -0700")
    assert caught.value.loc == 3 and "bad time" in caught.value.msg


def test_typed_survives_copies() -> None:
    element = values.typed("n", pp.Regex(r"\d+"), int)
    assert values.typed_info(element.copy()) == values.typed_info(element)
    assert values.typed_info(pp.Regex(r"\d+")) is None
