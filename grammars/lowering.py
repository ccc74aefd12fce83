"""Lower a (regular) pyparsing grammar to one compiled ``re`` with named groups, and run it.

The pyparsing grammar stays the single source of truth: ``FastParser`` walks it once and
emits a regex that reproduces pyparsing's PEG semantics exactly. pyparsing never backtracks
into a token it has matched, into an alternative it has chosen, or into a repetition, so every
such piece becomes an atomic group or a possessive quantifier. That also keeps hostile lines
linear. Whitespace skipping is emitted wherever pyparsing's ``preParse`` would run.

Fields, on both paths (``results_to_fields``): a flat dict with one key per results name in the
grammar, in order of appearance, nested names included (``request`` and its ``method``);
``None`` when the named part did not match; the value of a ``values.typed`` element converted
by its own converter; a plain named token as its text. Names are read "last match wins".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import pyparsing as pp

from pyparsing.core import _MultipleMatch
from re import _constants as _c  # type: ignore[attr-defined]  # the parsed regex's opcodes (_sees_newline)
from re import _parser as sre_parse  # type: ignore[attr-defined]

from grammars import backtracking, record_builder, values
from grammars.portable_regex import portable
from grammars.result import Fields, ParseError

_MARKER_PREFIX: Final = "_original_"  # original_text_for's internal names
_SCOPED_FLAGS: Final = {re.I: "i", re.M: "m", re.S: "s", re.X: "x", re.A: "a"}
_TEXT_TOKENS: Final = (pp.Regex, pp.Word, pp.Literal, pp.Keyword, pp.White, pp.SkipTo)


class LoweringError(ValueError):
    """The grammar uses a construct the regex cannot reproduce exactly; use pyparsing only."""


def _ws(element: pp.ParserElement, but: str = "") -> str:
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


class _Lowerer:
    """One walk over the grammar: the pattern text and the slots its groups fill."""

    def __init__(self) -> None:
        self.slots: list[record_builder.Slot] = []
        self.groups: dict[str, str] = {}  # "(?P<gN>body)" → gN
        self.guards: dict[tuple[str, int], str] = {}  # (gN, id(converter)) → values.typed's guard
        self.forwards: set[int] = set()

    def lower(self, element: pp.ParserElement, pre: bool, optional: bool, named: bool) -> str:
        if element.ignoreExprs:
            raise LoweringError(f"{element}: ignore expressions")
        prefix = _ws(element) if pre and element.callPreparse and element.skipWhitespace else ""
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

    def group(self, name: str, body: str, convert: values.Converter | None, optional: bool, named: bool,
              guard: str | None = None) -> str:
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


def _no_fields(line: str) -> None:
    return None


class FastParser:
    """``grammar`` lowered to one regex; ``parse(line)`` gives its Fields or ``None`` on no match.

    Raises ``LoweringError`` when the grammar is not regular or uses an unsupported construct.
    ``None`` from ``parse`` is not an error report: run pyparsing (``parse_with``) to locate it.
    """

    parse: Callable[[str], Fields | None]

    def __init__(self, grammar: pp.ParserElement) -> None:
        grammar.streamline()  # pyparsing streamlines before parsing; read the same flags it will
        lowerer = _Lowerer()
        try:
            body = lowerer.lower(grammar, True, False, True)
        except RecursionError:
            raise LoweringError("grammar too deep") from None
        # parse_all=True: the grammar's own skip, then Empty() + StringEnd() with default whitespace
        end = _ws(grammar) if grammar.skipWhitespace else ""
        default_ws = re.escape("".join(sorted(pp.ParserElement.DEFAULT_WHITE_CHARS)))
        # portable(): possessive groups as CPython 3.11.2 matches them too (grammars.portable_regex)
        self.regex: str = portable(f"{body}{end}[{default_ws}]*+\\Z")
        # scanner(): the same line, one of many in a block (newline-separated lines: the ends may not eat them)
        self._scan_line = portable(f"{body}{_ws(grammar, but=chr(10)) if end else ''}[{default_ws.replace(chr(10), '')}]*+")
        try:
            self.pattern: re.Pattern[str] = re.compile(self.regex)
        except re.error as exc:
            raise LoweringError(f"emitted regex does not compile: {exc}") from None
        self.names: tuple[str, ...] = result_names(grammar)
        by_index = {index: group for group, index in self.pattern.groupindex.items()}
        group_order = [by_index.get(index) for index in range(1, self.pattern.groups + 1)]
        self.source, env = record_builder.builder_source(self.names, group_order, lowerer.slots)
        self._env: dict[str, Any] = {"_match": self.pattern.match, **env}
        self._code = compile(self.source, f"<lowered {grammar.name}>", "exec")
        self.parse = self.with_fallback(_no_fields)
        self._group_order = group_order
        self._slots = lowerer.slots
        self._guards = lowerer.guards
        self._probes: dict[tuple[str, ...], Callable[[str], tuple[Any, ...] | None]] = {}
        self._scanners: dict[tuple[tuple[str, ...], str], Scanner | None] = {}

    def with_fallback(self, on_miss: Callable[[str], Any]) -> Callable[[str], Any]:
        """The builder, returning ``on_miss(line)`` instead of ``None`` when the regex does not
        match (pass the pyparsing fallback: one Python frame less per line on the hot path)."""
        namespace = {**self._env, "_miss": on_miss}
        exec(self._code, namespace)  # the source is built from the grammar only, never from log text
        build: Callable[[str], Any] = namespace["build"]
        return build


    def probe(self, wanted: tuple[str, ...]) -> Callable[[str], tuple[Any, ...] | None]:
        """``probe(line)``: the values of the ``wanted`` names (``None`` for a name the grammar lacks), or
        ``None`` when ``parse(line)`` would not give a record (no match, or a conversion that fails).

        Cheaper than ``parse`` when few fields are needed: no dict, and only the conversions that
        may fail are run besides the wanted ones (``record_builder.probe_source``).
        """
        probe = self._probes.get(wanted)
        if probe is None:
            source, env = record_builder.probe_source(self.names, self._group_order, self._slots, wanted)
            namespace = {"_match": self.pattern.match, "_miss": _no_fields, **env}
            exec(compile(source, f"<lowered probe {wanted}>", "exec"), namespace)  # grammar names only
            probe = self._probes[wanted] = namespace["probe"]
        return probe

    def scanner(self, wanted: tuple[str, ...], exclude: str = "") -> Scanner | None:
        """The ``Scanner`` of many lines for the ``wanted`` names (``probe`` of each line of a block, from one
        regex pass over the block); ``exclude``: a regex that, matched at a line's start, makes the line
        unanswered. Cached.

        ``None`` (no scanner) when the block's regex could answer differently from the line's, or the scan
        could not be sure a line builds: a wanted name that is not one group of its own that always takes part
        in a match (the block's regex reports ``""`` where the line's gives ``None``), a converter of another
        name that may raise and has no guard, or a lookaround that could see past a line's end
        (``_sees_newline``).
        """
        key = (wanted, exclude)
        if key not in self._scanners:
            self._scanners[key] = self._scanner(wanted, exclude)
        return self._scanners[key]

    def _scanner(self, wanted: tuple[str, ...], exclude: str) -> Scanner | None:
        read: dict[str, str] = {}  # wanted name → its group
        converters: list[values.Converter | None] = []
        for name in wanted:
            slots = [(group, convert, optional) for slot_name, group, convert, optional in self._slots
                     if slot_name == name]
            if len(slots) != 1 or slots[0][2]:
                return None
            read[name], convert, _ = slots[0]
            converters.append(convert)
        wanted_pairs = {(group, id(convert)) for group, convert in zip(read.values(), converters)}
        # every other converter: total, or its guard is checked by the regex where its value starts (once)
        checks: dict[str, str] = {}
        for _, group, convert, _ in self._slots:
            pair = (group, id(convert))
            if convert is None or convert is str or values.is_total(convert) or pair in wanted_pairs:
                continue
            guard = self._guards.get(pair)
            if not guard:
                if guard is None:
                    return None
                continue  # "": the group's own regex shows the converter takes it
            if f"(?={guard})" not in checks.get(group, ""):
                checks[group] = checks.get(group, "") + f"(?={guard})"
        groups = set(read.values())

        def group_start(m: re.Match[str]) -> str:
            return checks.get(m.group(1), "") + (m.group(0) if m.group(1) in groups else "(?:")

        line = re.sub(r"\(\?P<(g\d+)>", group_start, self._scan_line)
        not_excluded = f"(?!{exclude})" if exclude else ""
        # a line start, a line end: (?<![^\n]), (?![^\n]) (no MULTILINE flag: the grammar's own ^ and $ keep theirs)
        regex = portable(f"(?<![^\\n]){not_excluded}(?:{line})(?![^\\n])|(?<![^\\n])([^\\n]+)")  # the guards too
        try:
            pattern = re.compile(regex)
        except re.error:
            return None
        if _sees_newline(regex):
            return None
        # findall's row: the groups in pattern order, then the unanswered line's text
        order = [group for group, _ in sorted(pattern.groupindex.items(), key=lambda item: item[1])]
        return Scanner(pattern, tuple(order.index(read[name]) for name in wanted), tuple(converters))


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

    def __init__(self, pattern: re.Pattern[str], at: tuple[int, ...],
                 converters: tuple[values.Converter | None, ...]) -> None:
        self.pattern = pattern
        self._findall = pattern.findall
        self.at = at  # each wanted name's place in a row
        self.converters = converters  # and its converter (None: the text)
        # whether an empty line can match (a grammar that takes nothing): alone as in a block, its lookarounds
        # cannot see a newline (_sees_newline), then every empty line must be looked for
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
            return tuple(row[at] if convert is None else convert(row[at])
                         for at, convert in zip(self.at, self.converters))
        except Exception:  # noqa: BLE001 - as the probe: the record would not build
            return None

    def __call__(self, block: str, n: int) -> list[tuple[Any, ...] | None] | None:
        rows = self.rows(block, n)
        return None if rows is None else [self.answer(row) for row in rows]


def _sees_newline(regex: str) -> bool:
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
        elif op in (_c.GROUPREF, _c.GROUPREF_EXISTS, _c.GROUPREF_IGNORE, _c.GROUPREF_LOC_IGNORE,
                    _c.GROUPREF_UNI_IGNORE):
            return True
        elif inside and _takes_newline(op, arg, dotall):
            return True
    return False


_NEWLINE_CATEGORIES: Final = frozenset({_c.CATEGORY_SPACE, _c.CATEGORY_NOT_DIGIT, _c.CATEGORY_NOT_WORD,
                                        _c.CATEGORY_LINEBREAK, _c.CATEGORY_UNI_SPACE, _c.CATEGORY_UNI_NOT_DIGIT,
                                        _c.CATEGORY_UNI_NOT_WORD, _c.CATEGORY_UNI_LINEBREAK,
                                        _c.CATEGORY_LOC_NOT_WORD})


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


_NAMES_ATTR: Final = "badgateway_result_names"  # cached on the grammar itself: no global registry


def results_to_fields(results: pp.ParseResults, names: tuple[str, ...]) -> Fields:
    """pyparsing results → Fields: every name of the grammar, ``None`` when absent, lists as lists."""
    fields: Fields = dict.fromkeys(names)
    for name in names:
        if name in results:
            value = results[name]
            fields[name] = value.as_list() if isinstance(value, pp.ParseResults) else value
    return fields


def parse_with(grammar: pp.ParserElement, fast: FastParser | None, line: str) -> Fields | ParseError:
    """Fast path first, then pyparsing for its answer or its located error. Never raises.

    Tabs are kept (``parse_with_tabs``): a tab-separated ``log_format`` must not see spaces.
    """
    if fast is not None:
        fields = fast.parse(line)
        if fields is not None:
            return fields
        names = fast.names
    else:
        names = getattr(grammar, _NAMES_ATTR, None) or result_names(grammar)
        setattr(grammar, _NAMES_ATTR, names)
    try:
        if not grammar.keepTabs:
            grammar.parse_with_tabs()
        results = grammar.parse_string(line, parse_all=True)
        return results_to_fields(results, names)
    except pp.ParseBaseException as exc:
        return ParseError(exc.msg, exc.loc + 1, line)
    except RecursionError:
        return ParseError("line too deeply nested for the grammar", 1, line)
    except Exception as exc:  # a converter bug must not stop the stream; report it on the line
        return ParseError(f"{type(exc).__name__}: {exc}", 1, line)
