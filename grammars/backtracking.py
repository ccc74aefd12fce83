"""Can a regex token backtrack? If not, the lowered regex needs no atomic group around it.

pyparsing never backtracks into a token it has matched (PEG semantics), so ``grammars.lowering``
wraps each token in an atomic group ``(?>…)``. An atomic group costs the ``re`` engine a little
on every line; a token that can match in only one way (possessive repeats, fixed counts,
alternatives that start with different characters: ``\\d++|-``) does not need one.
The check reads the stdlib's own parse of the pattern; when in doubt, the answer is "atomic".
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

# the stdlib's regex parser (private, hence imported by name and every use guarded)
_sre_parser: Any = importlib.import_module("re._parser")

_DETERMINISTIC_OPS: Final = frozenset(
    {
        "LITERAL",
        "NOT_LITERAL",
        "IN",
        "ANY",
        "AT",
        "CATEGORY",
        "POSSESSIVE_REPEAT",
        "ATOMIC_GROUP",
        "ASSERT",
        "ASSERT_NOT",
    }
)


def _first_chars(items: Any) -> frozenset[str] | None:
    """The characters a parsed pattern can start with, when that is a small known set."""
    if not items:
        return None
    op, arg = items[0]
    if str(op) == "LITERAL":
        return frozenset(chr(arg))
    if str(op) == "IN" and all(str(kind) == "LITERAL" for kind, _ in arg):
        return frozenset(chr(code) for _, code in arg)
    if str(op) in ("POSSESSIVE_REPEAT", "MAX_REPEAT") and arg[0] >= 1:
        return _first_chars(arg[2])
    return None


def _deterministic(items: Any) -> bool:
    """True when the parsed regex never backtracks into itself (so no atomic group is needed)."""
    for op, arg in items:
        name = str(op)
        if name in _DETERMINISTIC_OPS:
            continue
        if name in ("MAX_REPEAT", "MIN_REPEAT") and arg[0] == arg[1] and _deterministic(arg[2]):
            continue
        if name == "SUBPATTERN" and _deterministic(arg[-1]):
            continue
        if name == "BRANCH" and _exclusive(arg[1]):
            continue
        return False
    return True


def _exclusive(alternatives: Any) -> bool:
    """Alternatives that are each deterministic and start with disjoint known characters."""
    seen: set[str] = set()
    unknown = 0
    for alternative in alternatives:
        if not _deterministic(alternative):
            return False
        chars = _first_chars(alternative)
        if chars is None:
            unknown += 1
            continue
        if seen & chars:
            return False
        seen |= chars
    if unknown == 0:
        return True
    # one alternative of unknown start (``\d++``) against known ones (``-``): probe its start
    if unknown > 1:
        return False
    other = next(alt for alt in alternatives if _first_chars(alt) is None)
    start = _start_probe(other)
    return start is not None and not any(start(char) for char in seen)


def _start_probe(items: Any) -> Any:
    """A predicate telling whether a character can start ``items`` (only for a leading class)."""
    if not items:
        return None  # an empty alternative matches anywhere
    op, arg = items[0]
    if str(op) in ("POSSESSIVE_REPEAT", "MAX_REPEAT") and arg[0] >= 1:
        return _start_probe(arg[2])
    if str(op) == "IN" and not any(str(kind) == "NEGATE" for kind, _ in arg):

        def member(char: str, arg: Any = arg) -> bool:
            for kind, value in arg:
                kind = str(kind)
                if kind == "LITERAL" and chr(value) == char:
                    return True
                if kind == "RANGE" and value[0] <= ord(char) <= value[1]:
                    return True
                if kind == "CATEGORY" and re.match(_CATEGORY_CLASSES.get(str(value), "[\\s\\S]"), char):
                    return True
            return False

        return member
    return None


_CATEGORY_CLASSES: Final = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}


def atomic(pattern: str) -> str:
    """``pattern`` as one token pyparsing will not backtrack into: atomic unless it cannot backtrack."""
    try:
        deterministic = _deterministic(_sre_parser.parse(pattern))
    except Exception:  # private parser API changed: fall back to the always-correct form
        deterministic = False
    return f"(?:{pattern})" if deterministic else f"(?>{pattern})"
