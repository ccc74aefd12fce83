"""Write the regex of a pyparsing grammar: pyparsing's PEG semantics as atomic groups and possessive quantifiers.

``Lowerer`` walks a grammar once (``FastParser`` in grammars/lowering.py runs the result). Only regular grammars
lower; anything else raises ``LoweringError`` and the grammar keeps its pyparsing path.
"""

from __future__ import annotations

import re
from typing import Final

import pyparsing as pp
from pyparsing.core import _MultipleMatch

from grammars import backtracking, record_builder, values

_MARKER_PREFIX: Final = "_original_"  # original_text_for's internal names
_SCOPED_FLAGS: Final = {re.I: "i", re.M: "m", re.S: "s", re.X: "x", re.A: "a"}
_TEXT_TOKENS: Final = (pp.Regex, pp.Word, pp.Literal, pp.Keyword, pp.White, pp.SkipTo)


class LoweringError(ValueError):
    """The grammar uses a construct the regex cannot reproduce exactly; use pyparsing only."""


def ws(element: pp.ParserElement, but: str = "") -> str:
    chars = "".join(sorted(set(element.whiteChars) - set(but)))
    return f"[{re.escape(chars)}]*+" if chars else ""


def _has_default(element: pp.Opt) -> bool:
    return type(element.defaultValue).__name__ != "_NullToken"


def result_names(grammar: pp.ParserElement) -> tuple[str, ...]:
    """Every results name in ``grammar``, in order of first appearance."""
    names: dict[str, None] = {}
    seen: set[int] = set()

    def walk(element: pp.ParserElement) -> None:
        if id(element) in seen:
            return
        seen.add(id(element))
        name = element.resultsName
        if name and not name.startswith(_MARKER_PREFIX):
            names.setdefault(name)
        for child in element.recurse():
            walk(child)

    walk(grammar)
    return tuple(names)


def _text_only(element: pp.ParserElement) -> bool:
    """True when the tokens ``element`` yields, joined, are exactly the text it matched."""
    if element.parseAction or values.typed_info(element) is not None:
        return False
    if isinstance(element, (pp.CaselessLiteral, pp.CaselessKeyword, pp.QuotedString)):
        return isinstance(element, pp.QuotedString) and not element.unquote_results
    if isinstance(element, pp.Regex):
        return not (element.asMatch or element.asGroupList)
    if isinstance(element, pp.SkipTo):
        return not element.includeMatch
    if isinstance(element, (*_TEXT_TOKENS, pp.StringEnd, pp.LineEnd, pp.FollowedBy, pp.NotAny)):
        return True
    if isinstance(element, pp.Combine) and element.joinString:
        return False
    if isinstance(element, pp.Opt) and _has_default(element):
        return False
    if isinstance(element, (pp.And, pp.MatchFirst, pp.Or, pp.Opt, _MultipleMatch, pp.Combine, pp.Forward)):
        return all(_text_only(child) for child in element.recurse())
    return False


def _single_text(element: pp.ParserElement) -> bool:
    """True when a name on ``element`` gets exactly its matched text (one token)."""
    if isinstance(element, (pp.MatchFirst, pp.Or)):
        return all(_single_text(child) for child in element.exprs)
    if isinstance(element, pp.Forward) and element.expr is not None:
        return not element.parseAction and _single_text(element.expr)
    if isinstance(element, pp.Combine):
        return _text_only(element)
    return isinstance(element, _TEXT_TOKENS) and not isinstance(element, pp.Empty) and _text_only(element)


class Lowerer:
    """One walk over the grammar: the pattern text and the slots its groups fill."""

    def __init__(self) -> None:
        self.slots: list[record_builder.Slot] = []
        self.groups: dict[str, str] = {}  # "(?P<gN>body)" → gN
        self.guards: dict[tuple[str, int], str] = {}  # (gN, id(converter)) → values.typed's guard
        self.forwards: set[int] = set()

    def lower(self, element: pp.ParserElement, pre: bool, optional: bool, named: bool) -> str:
        if element.ignoreExprs:
            raise LoweringError(f"{element}: ignore expressions")
        prefix = ws(element) if pre and element.callPreparse and element.skipWhitespace else ""
        info = values.typed_info(element)
        name = element.resultsName
        if info is not None:
            convert, form = info
            if form == values.WRAPPED:
                # And(start marker, expr..., end marker); streamline may have spliced expr's parts in
                assert isinstance(element, pp.And)
                body = "".join(self.lower(part, True, optional, named) for part in element.exprs[1:-1])
            else:
                body = self.body(element, optional, named)
            return prefix + self.group(name, body, convert, optional, named, values.typed_guard(element))
        if element.parseAction:
            raise LoweringError(f"{element}: parse action not made by values.typed")
        if not element.modalResults:
            raise LoweringError(f"{element}: list_all_matches")
        body = self.body(element, optional, named)
        if name and not name.startswith(_MARKER_PREFIX):
            if not _single_text(element):
                raise LoweringError(f"{element}: name {name!r} on a part that is not one text token")
            body = self.group(name, body, None, optional, named)
        return prefix + body

    def group(
        self,
        name: str,
        body: str,
        convert: values.Converter | None,
        optional: bool,
        named: bool,
        guard: str | None = None,
    ) -> str:
        if not named:
            raise LoweringError(f"name {name!r} where pyparsing drops names")
        reused = self.groups.get(body)
        if reused is not None:  # a typed value wrapping exactly another (time_local and time): one group
            self.slots.append((name, reused, convert, optional))
            if guard is not None and convert is not None:
                self.guards[(reused, id(convert))] = guard
            return body
        group = f"g{len(self.groups)}"
        if guard is not None and convert is not None:
            self.guards[(group, id(convert))] = guard
        self.slots.append((name, group, convert, optional))
        self.groups[f"(?P<{group}>{body})"] = group
        return f"(?P<{group}>{body})"

    def body(self, element: pp.ParserElement, optional: bool, named: bool) -> str:
        lower = self.lower
        if isinstance(element, pp.Empty):
            return ""
        if isinstance(element, pp.Keyword):
            ident = re.escape("".join(sorted(element.identChars)))
            text = re.escape(element.match)
            text = f"(?i:{text})" if element.caseless else text
            return f"(?<![{ident}]){text}(?![{ident}])" if ident else text
        if isinstance(element, pp.CaselessLiteral):
            return f"(?i:{re.escape(element.match)})"
        if isinstance(element, pp.Literal):
            return re.escape(element.match)
        if isinstance(element, pp.Word):
            if getattr(element, "re", None) is None:
                raise LoweringError(f"{element}: Word without a generated regex")
            return backtracking.atomic(str(element.reString))
        if isinstance(element, pp.Regex):
            return self.regex(element)
        if isinstance(element, pp.QuotedString):
            return f"(?>{element.pattern})"
        if isinstance(element, pp.White):
            most = "" if element.maxLen >= 1 << 30 else str(element.maxLen)
            return f"[{re.escape(element.matchWhite)}]{{{element.minLen},{most}}}+"
        if isinstance(element, pp.StringEnd):
            return r"\Z"
        if isinstance(element, pp.LineEnd):
            return r"(?:\n|\Z)"
        if isinstance(element, pp.And):
            first, *rest = element.exprs
            parts = [lower(first, False, optional, named)]
            parts += [lower(child, True, optional, named) for child in rest]
            return "".join(parts)
        if isinstance(element, (pp.MatchFirst, pp.Or)):
            return self.choice(element, named)
        if isinstance(element, pp.Opt):
            if _has_default(element):
                raise LoweringError(f"{element}: Opt with a default")
            return f"(?:{lower(element.expr, False, True, named)})?+"
        if isinstance(element, _MultipleMatch):
            if element.not_ender is not None or getattr(element, "max_count", None) is not None:
                raise LoweringError(f"{element}: stop_on or a maximum count")
            inner = lower(element.expr, True, True, False)
            return f"(?:{inner})*+" if isinstance(element, pp.ZeroOrMore) else f"(?:{inner})++"
        if isinstance(element, pp.FollowedBy):
            return f"(?={lower(element.expr, True, optional, named)})"
        if isinstance(element, pp.NotAny):
            return f"(?!{lower(element.expr, True, True, False)})"
        if isinstance(element, pp.SkipTo):
            if element.includeMatch or element.failOn is not None or element.ignorer.ignoreExprs:
                raise LoweringError(f"{element}: SkipTo with include, fail_on or ignore")
            target = lower(element.expr, False, True, False)
            return rf"(?:(?!{target})[\s\S])*+(?={target})"
        if isinstance(element, pp.Suppress):
            return lower(element.expr, False, optional, False)
        if isinstance(element, pp.Combine):
            if not element.adjacent:
                raise LoweringError(f"{element}: Combine(adjacent=False)")
            return lower(element.expr, False, optional, named)
        if isinstance(element, pp.Group) and not element.resultsName and not result_names(element.expr):
            return lower(element.expr, False, optional, named)
        if isinstance(element, pp.Forward) and element.expr is not None and id(element) not in self.forwards:
            self.forwards.add(id(element))  # a recursive grammar is not regular
            return lower(element.expr, False, optional, named)
        raise LoweringError(f"{type(element).__name__} {element} has no regex form")

    def choice(self, element: pp.ParseExpression, named: bool) -> str:
        alternatives = list(element.exprs)
        if not alternatives:
            raise LoweringError("empty alternative")
        if isinstance(element, pp.Or):
            # longest match equals first match only for plain literals tried longest first
            if not all(type(alt) in (pp.Literal, pp.Keyword) and not alt.resultsName for alt in alternatives):
                raise LoweringError(f"{element}: Or (longest match) is ambiguous")
            alternatives.sort(key=lambda alt: -len(getattr(alt, "match", "")))
        optional = len(alternatives) > 1
        choice = "|".join(self.lower(alt, True, optional, named) for alt in alternatives)
        return backtracking.atomic(choice)  # ordered choice commits, unless the alternatives exclude each other

    @staticmethod
    def regex(element: pp.Regex) -> str:
        pattern = str(element.pattern)
        if element.asMatch or element.asGroupList:
            raise LoweringError(f"{element}: as_match / as_group_list")
        if re.search(r"\(\?P[<=]|\(\?<[A-Za-z_]|\\[1-9]", pattern):
            raise LoweringError(f"{element}: named groups or numbered backreferences")
        flags = element.flags & ~re.U
        letters = "".join(letter for flag, letter in _SCOPED_FLAGS.items() if flags & flag)
        if flags & ~sum(_SCOPED_FLAGS):
            raise LoweringError(f"{element}: regex flags {flags!r}")
        return f"(?>(?{letters}:{pattern}))" if letters else backtracking.atomic(pattern)
