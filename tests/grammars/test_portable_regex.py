"""Debian 12's python3 (CPython 3.11.2) mis-matches possessive quantifiers on groups (python/cpython#106052):
there, no regex the grammars run — pyparsing's own or the lowered one — may contain one. Elsewhere the rewrite
is asked for with ``BADGATEWAY_PORTABLE_REGEX=1``, in a subprocess, so it is tested on every interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyparsing as pp
import pytest

from grammars import access, error, fpm, fpm_access, slowlog
from grammars.lowering import FastParser
from grammars.portable_regex import AFFECTED, atomic_form

_c: Any = __import__("re._constants", fromlist=["_"])
_parser: Any = __import__("re._parser", fromlist=["_"])
_SINGLE = {_c.LITERAL, _c.NOT_LITERAL, _c.IN, _c.ANY, _c.CATEGORY}


def _affected(items: Any) -> bool:
    """A possessive repeat of more than one character class: the construct 3.11.0–3.11.4 mis-match."""
    for op, arg in items:
        if op is _c.POSSESSIVE_REPEAT:
            body = list(arg[2])
            if not (len(body) == 1 and body[0][0] in _SINGLE) or _affected(body):
                return True
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and _affected(arg[2]):
            return True
        elif op is _c.SUBPATTERN and _affected(arg[3]):
            return True
        elif op is _c.ATOMIC_GROUP and _affected(arg):
            return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT) and _affected(arg[1]):
            return True
        elif op is _c.BRANCH and any(_affected(branch) for branch in arg[1]):
            return True
    return False


def _affected_pattern(pattern: str) -> bool:
    return _affected(_parser.parse(pattern))


# (pattern, a text, whether it matches: what CPython >= 3.11.5 answers, and 3.11.2 does not for the first ones)
CASES = [
    (r"(?:a[^ ]*+b)*+ac", "ac", True),
    (r"[^ ]*+(?: (?!\[)[^ ]*+)*+ \[", "- [", True),  # combined's $remote_user: the bundled example's failure
    (r"(?:a[^ ]*+b)?+ac", "ac", True),
    (r"(?:a[^ ]++b)++ac", "abac", False),
    (r'"[^"\\]*+(?:\\.[^"\\]*+)*+"x', r'"a\"b"x', True),
    (r"(?P<g>(?:ab))?+x{2}+", "xx", True),
    (r"[(]*+(?:a)++\)", "((aa)", True),
    (r"(?:(?:a[bc]*+)++,)*+;", "ab,ac,;", True),
]


@pytest.mark.parametrize(("pattern", "text", "matches"), CASES)
def test_portable_matches_as_fixed_cpython(pattern: str, text: str, matches: bool) -> None:
    rewritten = atomic_form(pattern)
    assert not _affected_pattern(rewritten), rewritten
    assert (re.match(rewritten, text) is not None) is matches


def test_portable_leaves_classes_escapes_and_single_repeats() -> None:
    for pattern in (r"[(]*+\(\)++[)]", r"\d++(?:x)", r"[^\]()]*+", r"(?i:ab)", r"a{2}+b"):
        assert atomic_form(pattern) == pattern


def _regexes(element: pp.ParserElement, seen: set[int]) -> Iterator[str]:
    if id(element) in seen:
        return
    seen.add(id(element))
    if isinstance(element, pp.Regex):
        yield str(element.pattern)
    for child in element.recurse():
        yield from _regexes(child, seen)


def _grammars() -> Iterator[tuple[str, pp.ParserElement | FastParser]]:
    for module in (access, error, fpm, fpm_access, slowlog):
        for name, value in vars(module).items():
            if isinstance(value, (pp.ParserElement, FastParser)):
                yield f"{module.__name__}.{name}", value
            if isinstance(value, access.AccessFormat):
                yield f"{module.__name__}.{name}", value.grammar
                if value.fast is not None:
                    yield f"{module.__name__}.{name}.fast", value.fast
    for escape in ("default", "json", "none"):
        fmt = access.compile_log_format(
            '$remote_addr [$time_local] "$request" $status [$upstream_addr] ($upstream_status) '
            '$upstream_response_time $request_time "$http_user_agent"',
            escape,
        )
        yield f"custom {escape}", fmt.grammar
        assert fmt.fast is not None
        yield f"custom {escape} fast", fmt.fast


@pytest.mark.skipif(not AFFECTED, reason="possessive groups work here: see test_the_rewritten_grammars")
def test_no_grammar_runs_a_possessive_group() -> None:
    found = []
    for name, grammar in _grammars():
        if isinstance(grammar, FastParser):
            patterns = [grammar.regex, grammar._scan_line]
        else:
            patterns = list(_regexes(grammar, set()))
        found += [(name, pattern) for pattern in patterns if _affected_pattern(pattern)]
    assert not found


ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(AFFECTED, reason="this interpreter runs the rewritten grammars in every test already")
def test_the_rewritten_grammars_agree_with_pyparsing_and_hold_no_possessive_group() -> None:
    # what Debian 12's python3 runs: the grammar tables, the differential tests and the check above
    env = {**os.environ, "BADGATEWAY_PORTABLE_REGEX": "1"}
    tests = [
        "tests/grammars/test_portable_regex.py",
        "tests/grammars/test_access.py",
        "tests/grammars/test_error_fpm_differential.py",
        "tests/grammars/test_lowering.py",
        "tests/grammars/test_scanner.py",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
