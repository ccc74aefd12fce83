"""A grammar's block scanner: one regex pass over many lines at once, giving the wanted fields of each line.

``FastParser.scanner`` (grammars/lowering.py) builds one from a lowered grammar when no part of it can match a
newline (``sees_newline`` walks the parsed regex to prove it); the pipeline then parses a block of healthy access
lines with a single ``finditer`` instead of one match per line.
"""

from __future__ import annotations

import re
from re import _constants as _c  # type: ignore[attr-defined]  # the parsed regex's opcodes (sees_newline)
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Final

from grammars import values


class Scanner:
    """``FastParser.probe`` of the ``n`` newline-separated lines of a block, from one ``findall`` of a regex
    that matches the grammar between line boundaries (or takes the line whole when it does not).

    ``rows(block, n)``: one row per line, the wanted values' texts and, last, ``""`` for a line the grammar
    matched whose every conversion but the wanted ones is sure to succeed (their guards are in the regex), else
    the line's text; ``None`` when the block is not ``n`` non-empty lines the regex took one at a time (a match
    that crosses a line end leaves fewer rows than lines: the caller then probes line by line). Equal texts give
    equal values: a caller may convert each distinct text once (``at``, ``converters``). ``answer(row)``: the
    probe's answer for one row; ``scan(block, n)``: every line's.
    """

    __slots__ = ("pattern", "_findall", "at", "converters", "_empty_matches")

    def __init__(
        self, pattern: re.Pattern[str], at: tuple[int, ...], converters: tuple[values.Converter | None, ...]
    ) -> None:
        self.pattern = pattern
        self._findall = pattern.findall
        self.at = at  # each wanted name's place in a row
        self.converters = converters  # and its converter (None: the text)
        # whether an empty line can match (a grammar that takes nothing): alone as in a block, its lookarounds
        # cannot see a newline (sees_newline), then every empty line must be looked for
        self._empty_matches = pattern.match("") is not None

    def rows(self, block: str, n: int) -> list[tuple[str, ...]] | None:
        if not block or (self._empty_matches and ("\n\n" in block or block[0] == "\n" or block[-1] == "\n")):
            return None  # an empty line the regex could take: one match per line is not certain
        rows: list[tuple[str, ...]] = self._findall(block)
        # a match starts only at a line's start, and an empty line (which no match takes) or a match that runs on
        # into the next line leaves fewer rows than lines
        return rows if len(rows) == n else None

    def answer(self, row: tuple[str, ...] | None) -> tuple[Any, ...] | None:
        """``probe``'s answer for the line of ``row`` (``None``: no row, unanswered, or a conversion fails)."""
        if row is None or row[-1]:
            return None
        try:
            return tuple(
                row[at] if convert is None else convert(row[at]) for at, convert in zip(self.at, self.converters)
            )
        except Exception:  # noqa: BLE001 - as the probe: the record would not build
            return None

    def __call__(self, block: str, n: int) -> list[tuple[Any, ...] | None] | None:
        rows = self.rows(block, n)
        return None if rows is None else [self.answer(row) for row in rows]


def sees_newline(regex: str) -> bool:
    r"""True when a lookaround or an anchor in ``regex`` could decide differently at a line's end inside a
    block (where it sees ``\n``) than at the end of the line alone (where it sees nothing): a lookaround
    whose content may match a newline, or an anchor (``^ $ \A \Z``). Conservative: unsure is True."""
    try:
        tree = sre_parse.parse(regex)
        return _walk(list(tree), inside=False, dotall=bool(tree.state.flags & re.S))
    except Exception:  # noqa: BLE001 - the private parser changed: no scanner, the probe serves
        return True


def _walk(items: list[tuple[Any, Any]], inside: bool, dotall: bool) -> bool:
    for op, arg in items:
        if op is _c.AT:
            if arg not in (_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY):
                return True
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            if _walk(list(arg[1]), True, dotall):
                return True
        elif op is _c.SUBPATTERN:
            _, add, remove, sub = arg
            if _walk(list(sub), inside, (dotall or bool(add & re.S)) and not remove & re.S):
                return True
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
            if _walk(list(arg[2]), inside, dotall):
                return True
        elif op is _c.ATOMIC_GROUP:
            if _walk(list(arg), inside, dotall):
                return True
        elif op is _c.BRANCH:
            if any(_walk(list(branch), inside, dotall) for branch in arg[1]):
                return True
        elif op in (
            _c.GROUPREF,
            _c.GROUPREF_EXISTS,
            _c.GROUPREF_IGNORE,
            _c.GROUPREF_LOC_IGNORE,
            _c.GROUPREF_UNI_IGNORE,
        ):
            return True
        elif inside and _takes_newline(op, arg, dotall):
            return True
    return False


_NEWLINE_CATEGORIES: Final = frozenset(
    {
        _c.CATEGORY_SPACE,
        _c.CATEGORY_NOT_DIGIT,
        _c.CATEGORY_NOT_WORD,
        _c.CATEGORY_LINEBREAK,
        _c.CATEGORY_UNI_SPACE,
        _c.CATEGORY_UNI_NOT_DIGIT,
        _c.CATEGORY_UNI_NOT_WORD,
        _c.CATEGORY_UNI_LINEBREAK,
        _c.CATEGORY_LOC_NOT_WORD,
    }
)


def _takes_newline(op: Any, arg: Any, dotall: bool) -> bool:
    r"""Whether one character-matching item may match ``\n`` (unknown items: True)."""
    if op is _c.LITERAL:
        return bool(arg == 10)
    if op is _c.NOT_LITERAL:
        return bool(arg != 10)
    if op is _c.ANY:
        return dotall
    if op is _c.CATEGORY:
        return arg in _NEWLINE_CATEGORIES
    if op is _c.RANGE:
        return bool(arg[0] <= 10 <= arg[1])
    if op is _c.IN:
        negate = bool(arg) and arg[0][0] is _c.NEGATE
        hit = any(_takes_newline(sub_op, sub_arg, False) for sub_op, sub_arg in arg[negate:])
        return hit != negate
    return True
