"""Possessive quantifiers in the form every supported CPython matches correctly.

CPython 3.11.0–3.11.4 (Debian 12 ships 3.11.2) mis-match a possessive quantifier on a group whose body can
backtrack (python/cpython#106052): ``re.match(r"(?:a[^ ]*+b)*+ac", "ac")`` is ``None`` there, a match
elsewhere. ``atomic_form`` writes ``X*+`` as ``(?>X*)``, a greedy repeat inside an atomic group, which 3.11.2
matches correctly and which is as linear: the atomic group never gives back what the repeat took. It costs
~15 % per match where possessive repeats work, so ``portable`` rewrites only on an interpreter that fails the
probe below (or when ``BADGATEWAY_PORTABLE_REGEX=1`` asks for it: the tests run the rewritten grammars
everywhere that way).

A possessive quantifier on one character or class (``[^ ]*+``, ``\\d++``) is compiled differently
(``POSSESSIVE_REPEAT_ONE``), was never affected, and is kept.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import Final

# a group opener: "(" and its "?…" head, so the head's "?" is not read as a quantifier
_OPENER: Final = re.compile(r"\((?:\?(?:P<\w+>|<[=!]|[=!:>]|[aiLmsux-]+:|P=\w+\)|#[^)]*\)))?")
_QUANTIFIER: Final = re.compile(r"(?:[*+?]|\{\d*(?:,\d*)?\})\+")


# python/cpython#106052's own example shape: None where possessive groups are broken
AFFECTED: Final = re.match(r"(?:a[^ ]*+b)*+ac", "ac") is None or os.environ.get("BADGATEWAY_PORTABLE_REGEX") == "1"


def portable(pattern: str) -> str:
    """``pattern`` as this interpreter matches it correctly: ``atomic_form(pattern)`` where possessive groups
    are broken, else unchanged."""
    return atomic_form(pattern) if AFFECTED else pattern


@cache
def atomic_form(pattern: str) -> str:
    """``pattern`` with every possessive quantifier on a group written as a greedy one in an atomic group."""
    out: list[str] = []
    opened: list[int] = []  # index in ``out`` of each open group's opener
    last_group: int | None = None  # the group that just closed (a quantifier right after applies to it)
    at = 0
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            out.append(pattern[at : at + 2])
            at += 2
            last_group = None
            continue
        if char == "[":
            end = _class_end(pattern, at)
            out.append(pattern[at:end])
            at = end
            last_group = None
            continue
        if char == "(":
            opener = _OPENER.match(pattern, at)
            assert opener is not None  # "(" alone always matches
            text = opener.group()
            if text.endswith(")"):  # (?P=name), (?#comment): complete in themselves
                out.append(text)
                last_group = None
            else:
                opened.append(len(out))
                out.append(text)
            at = opener.end()
            continue
        if char == ")" and opened:
            last_group = opened.pop()
            out.append(char)
            at += 1
            continue
        quantifier = _QUANTIFIER.match(pattern, at)
        if quantifier is not None and last_group is not None:
            out[last_group] = "(?>" + out[last_group]
            out.append(quantifier.group()[:-1] + ")")
            at = quantifier.end()
            last_group = None
            continue
        out.append(char)
        at += 1
        last_group = None
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class that opens at ``start``."""
    at = start + 1
    if at < len(pattern) and pattern[at] == "^":
        at += 1
    if at < len(pattern) and pattern[at] == "]":  # a "]" first is a member
        at += 1
    while at < len(pattern) and pattern[at] != "]":
        at += 2 if pattern[at] == "\\" else 1
    return min(at + 1, len(pattern))
