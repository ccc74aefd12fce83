"""Lowering pyparsing to one regex: each construct agrees with pyparsing; unsupported ones decline."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pyparsing as pp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammars import lowering, values
from grammars.result import ParseError


def _lit(text: str) -> pp.ParserElement:
    return pp.Literal(text).leave_whitespace()


def _int(name: str) -> pp.ParserElement:
    return values.typed(name, pp.Regex(r"\d+|-"), values.nullable(int))


WORD = pp.Word(pp.alphas)

# (description, grammar factory, lines: each must give the same answer on both paths)
GRAMMARS: list[tuple[str, Callable[[], pp.ParserElement], list[str]]] = [
    (
        "And with default whitespace skipping",
        lambda: WORD("a") + WORD("b"),
        ["x y", "  x \t y  ", "x", "x y z", "xy", ""],
    ),
    (
        "leave_whitespace: blanks are literal",
        lambda: (WORD("a") + _lit(" ") + WORD("b")).leave_whitespace(),
        ["x y", "x  y", " x y", "x y "],
    ),
    (
        "MatchFirst commits to the first match",
        lambda: (pp.Literal("ab")("n") | pp.Literal("abc")("n")) + pp.Opt("c"),
        ["abc", "ab", "abcc", "ac"],
    ),
    (
        "Or of literals: longest wins",
        lambda: pp.Or([pp.Literal("ab"), pp.Literal("abc")])("n") + pp.StringEnd(),
        ["abc", "ab", "abcd"],
    ),
    ("Opt absent gives None", lambda: WORD("a") + pp.Opt(_int("n")), ["x 5", "x", "x -", "x 5 6"]),
    (
        "ZeroOrMore and OneOrMore without names",
        lambda: WORD("a") + pp.ZeroOrMore(",") + pp.OneOrMore(pp.Word(pp.nums)),
        ["a,,, 1 2 3", "a 1", "a", "a,,"],
    ),
    (
        "CaselessLiteral and Keyword",
        lambda: pp.CaselessLiteral("get") + pp.Keyword("if") + pp.Word(pp.alphanums)("x"),
        ["GET if y", "get ifx y", "Get if 9", "GETif y"],
    ),
    ("CaselessKeyword", lambda: pp.CaselessKeyword("select") + WORD("t"), ["SELECT t", "selectt x", "Select x"]),
    (
        "Char and Word with ranges",
        lambda: pp.Char("ab")("c") + pp.Word(pp.nums, min=2, max=3)("n"),
        ["a12", "b 123", "a1", "c12", "a1234"],
    ),
    ("Regex with flags", lambda: pp.Regex("abc", flags=re.I)("x") + pp.Regex(r"\d+")("n"), ["ABC 1", "aBc12", "ab 1"]),
    (
        "QuotedString, unnamed",
        lambda: pp.QuotedString('"', esc_char="\\") + WORD("w"),
        ['"a b" x', r'"a \" b" x', '"unterminated x', '"" x'],
    ),
    (
        "Suppress and FollowedBy keep pyparsing's view",
        lambda: pp.Suppress("[") + pp.FollowedBy(pp.Regex(r"\d+")("ahead")) + pp.Regex(r"\d+")("n") + pp.Suppress("]"),
        ["[12]", "[x]", "[1 ]"],
    ),
    ("NotAny", lambda: ~pp.Literal("SSH") + pp.Regex(r"\S+")("token"), ["GET", "SSH-2.0", "SS"]),
    (
        "Combine keeps the joined text",
        lambda: pp.Combine(pp.Word(pp.nums) + "." + pp.Word(pp.nums))("v"),
        ["1.5", "1 .5", "1.", "10.25"],
    ),
    (
        "SkipTo without fail_on",
        lambda: pp.SkipTo(pp.Literal(" while "))("msg") + pp.Literal(" while ") + pp.Regex(".*")("action"),
        ["a b while c d", "no marker", " while x"],
    ),
    (
        "White and LineEnd",
        lambda: (WORD("a") + pp.White(" ", exact=2) + WORD("b") + pp.LineEnd()).leave_whitespace(),
        ["x  y", "x y", "x   y", "x  y\n"],
    ),
    (
        "Empty and harmless Group",
        lambda: pp.Empty() + pp.Group(pp.Word(pp.nums) + pp.Word(pp.nums)) + WORD("w"),
        ["1 2 x", "1 x"],
    ),
    (
        "same name in two alternatives",
        lambda: values.typed("v", pp.Regex(r"\d+"), int) | values.typed("v", pp.Regex("[a-z]+"), str.upper),
        ["12", "ab", "-"],
    ),
    (
        "typed value wrapping names",
        lambda: (
            values.typed("request", pp.Regex("[A-Z]+")("method") + _lit(" ") + pp.Regex(r"\S+")("uri"), str)
            + _lit(" ")
            + _int("status")
        ),
        ["GET /x 200", "GET /x -", "GET  /x 200", "get /x 200"],
    ),
    (
        "named result inside a lookahead",
        lambda: (
            pp.FollowedBy(pp.Regex(".*")("all"))
            + pp.Opt(_lit("[") + pp.Regex(r"[^\]]+")("pool") + _lit("] "))
            + pp.Regex(".*")("rest")
        ).leave_whitespace(),
        ["[www] child 1 started", "ready", "[www"],
    ),
    (
        "a converter that rejects: pyparsing decides",
        lambda: values.typed("n", pp.Regex(r"\d+"), _small),
        ["5", "500", "x"],
    ),
    (
        "set_whitespace_chars",
        lambda: WORD("a") + pp.Word(pp.nums).set_whitespace_chars("_")("n"),
        ["ab__12", "ab 12", "ab_12"],
    ),
]


def _small(text: str) -> int:
    if int(text) > 99:
        raise ValueError("too big")
    return int(text)


def _pyparsing(grammar: pp.ParserElement, names: tuple[str, ...], line: str) -> Any:
    result = lowering.parse_with(grammar, None, line)
    return None if isinstance(result, ParseError) else result


@pytest.mark.parametrize(("description", "factory", "lines"), GRAMMARS, ids=[g[0] for g in GRAMMARS])
def test_lowered_regex_agrees_with_pyparsing(
    description: str, factory: Callable[[], pp.ParserElement], lines: list[str]
) -> None:
    grammar = factory()
    fast = lowering.FastParser(grammar)
    for line in lines:
        assert fast.parse(line) == _pyparsing(grammar, fast.names, line), (line, fast.regex)


# (description, grammar factory) that must raise LoweringError: pyparsing alone then
DECLINED: list[tuple[str, Callable[[], pp.ParserElement]]] = [
    ("ambiguous Or", lambda: pp.Or([pp.Word(pp.alphas), pp.Word(pp.alphanums)])),
    ("Opt with a default", lambda: pp.Opt(pp.Word(pp.nums), default="0")("n")),
    ("names inside a repetition", lambda: pp.OneOrMore(pp.Word(pp.nums)("n"))),
    ("SkipTo with fail_on", lambda: pp.SkipTo("x", fail_on="y")),
    ("a foreign parse action", lambda: pp.Word(pp.nums).add_parse_action(lambda t: int(t[0]))),
    ("named groups inside a Regex", lambda: pp.Regex(r"(?P<x>\d+)")),
    ("Group with names", lambda: pp.Group(pp.Word(pp.nums)("n"))),
    ("names inside NotAny", lambda: ~pp.Word(pp.nums)("n") + pp.Word(pp.alphas)),
    ("a name on several tokens", lambda: (pp.Word(pp.nums) + pp.Word(pp.alphas))("both")),
    ("list_all_matches", lambda: pp.Word(pp.nums).set_results_name("n", list_all_matches=True)),
    ("ignore expressions", lambda: pp.Word(pp.nums).ignore(pp.c_style_comment)),
    ("Each", lambda: pp.Each([pp.Literal("a"), pp.Literal("b")])),
    ("recursion", lambda: _recursive()),
]


def _recursive() -> pp.ParserElement:
    forward = pp.Forward()
    forward <<= pp.Literal("(") + pp.Opt(forward) + pp.Literal(")")
    return forward


@pytest.mark.parametrize(("description", "factory"), DECLINED, ids=[d[0] for d in DECLINED])
def test_unsupported_constructs_decline(description: str, factory: Callable[[], pp.ParserElement]) -> None:
    with pytest.raises(lowering.LoweringError):
        lowering.FastParser(factory())


def test_declined_grammar_still_parses_through_parse_with() -> None:
    grammar = pp.Word(pp.nums)("n") + pp.Opt(pp.Word(pp.alphas), default="none")("w")
    assert lowering.parse_with(grammar, None, "12") == {"n": "12", "w": "none"}


# ---------------------------------------------------------------- parse_with: errors, never raises
STATUS_LINE = (_lit("status=") + _int("status") + pp.StringEnd()).leave_whitespace()
STATUS_FAST = lowering.FastParser(STATUS_LINE)

# (description, line, expected fields or failing column)
PARSE_WITH: list[tuple[str, str, dict[str, Any] | int]] = [
    ("a value", "status=502", {"status": 502}),
    ("nginx dash", "status=-", {"status": None}),
    ("StringEnd without blanks: no trailing newline", "status=502\n", 11),
    ("wrong key", "state=502", 1),
    ("not a number", "status=abc", 8),
    ("truncated", "status=", 8),
    ("trailing garbage", "status=502x", 11),
    ("tab is not a blank to skip", "status=\t502", 8),
]


@pytest.mark.parametrize(("description", "line", "expected"), PARSE_WITH, ids=[p[0] for p in PARSE_WITH])
def test_parse_with(description: str, line: str, expected: dict[str, Any] | int) -> None:
    result = lowering.parse_with(STATUS_LINE, STATUS_FAST, line)
    if isinstance(expected, int):
        assert isinstance(result, ParseError) and result.column == expected, result
        assert STATUS_FAST.parse(line) is None
    else:
        assert result == expected == STATUS_FAST.parse(line)


def _boom(text: str) -> int:
    raise ZeroDivisionError("converter bug")


@pytest.mark.parametrize(
    ("description", "grammar", "line"),
    [
        ("a converter bug", values.typed("n", pp.Regex(r"\d+"), _boom), "12"),
        ("deep recursion in a foreign grammar", _recursive(), "(" * 5000 + ")" * 5000),
    ],
)
def test_parse_with_never_raises(description: str, grammar: pp.ParserElement, line: str) -> None:
    result = lowering.parse_with(grammar, None, line)
    assert isinstance(result, (ParseError, dict))


def test_with_fallback_replaces_none() -> None:
    build = STATUS_FAST.with_fallback(lambda line: ("fallback", line))
    assert build("status=1") == {"status": 1}
    assert build("nope") == ("fallback", "nope")


def test_generated_builder_is_straight_line() -> None:
    """No loop over fields at run time: the source is generated from the grammar's names."""
    assert "for " not in STATUS_FAST.source and "'status'" in STATUS_FAST.source


def test_results_to_fields_turns_lists_into_lists() -> None:
    results = (pp.Word(pp.nums) + pp.Word(pp.nums))("pair").parse_string("1 2")
    assert lowering.results_to_fields(results, ("pair", "absent")) == {"pair": ["1", "2"], "absent": None}


# ---------------------------------------------------------------- differential and bounded time
DIFFERENTIAL = [factory() for _, factory, _ in GRAMMARS]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DIFFERENTIAL) - 1), st.text(alphabet='ab c12-[]"\\ \t\nwhileSGETx.', max_size=30))
def test_random_text_agrees(index: int, line: str) -> None:
    grammar = DIFFERENTIAL[index]
    fast = lowering.FastParser(grammar)
    assert fast.parse(line) == _pyparsing(grammar, fast.names, line), (line, fast.regex)


def test_nested_repetition_stays_linear() -> None:
    """(a+)+b is the classic catastrophic regex: lowered with possessive parts, it fails at once."""
    grammar = pp.OneOrMore(pp.Word("a")) + pp.Literal("b")
    fast = lowering.FastParser(grammar)
    started = time.perf_counter()
    assert fast.parse("a" * 100_000 + "c") is None
    assert time.perf_counter() - started < 2.0


# (pattern, needs an atomic group): a token that can match only one way needs none
ATOMIC: list[tuple[str, bool]] = [
    (r"\d++|-", False),  # alternatives start with different characters
    (r"[^\"]*+(?:(?<=\\)\"[^\"]*+)*+", False),
    (r"\d\d/[A-Z][a-z]{2}/\d{4}", False),  # fixed counts
    (r"\d+", True),  # greedy: pyparsing would not give characters back, the regex would
    (r"a|ab", True),  # alternatives sharing a start
    (r"a|", True),  # an empty alternative
    (r"[a-z]++|\d", True),  # both start with a class: not analysed, stays atomic
    (r"\d*+|-", True),  # the first alternative may match nothing
]


@pytest.mark.parametrize(("pattern", "atomic"), ATOMIC)
def test_backtracking_check(pattern: str, atomic: bool) -> None:
    from grammars import backtracking

    assert backtracking.atomic(pattern).startswith("(?>") is atomic
