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

from grammars import record_builder, values
from grammars.portable_regex import portable
from grammars.regex_writer import Lowerer, LoweringError, result_names, ws
from grammars.result import Fields, ParseError
from grammars.scanner import Scanner, sees_newline

_NAMES_ATTR: Final = "badgateway_result_names"  # cached on the grammar itself: no global registry

__all__ = ["FastParser", "LoweringError", "Scanner", "parse_with", "result_names", "results_to_fields"]


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
        lowerer = Lowerer()
        try:
            body = lowerer.lower(grammar, True, False, True)
        except RecursionError:
            raise LoweringError("grammar too deep") from None
        # parse_all=True: the grammar's own skip, then Empty() + StringEnd() with default whitespace
        end = ws(grammar) if grammar.skipWhitespace else ""
        default_ws = re.escape("".join(sorted(pp.ParserElement.DEFAULT_WHITE_CHARS)))
        # portable(): possessive groups as CPython 3.11.2 matches them too (grammars.portable_regex)
        self.regex: str = portable(f"{body}{end}[{default_ws}]*+\\Z")
        # scanner(): the same line, one of many in a block (newline-separated lines: the ends may not eat them)
        self._scan_line = portable(
            f"{body}{ws(grammar, but=chr(10)) if end else ''}[{default_ws.replace(chr(10), '')}]*+"
        )
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
        (``scanner.sees_newline``).
        """
        key = (wanted, exclude)
        if key not in self._scanners:
            self._scanners[key] = self._scanner(wanted, exclude)
        return self._scanners[key]

    def _scanner(self, wanted: tuple[str, ...], exclude: str) -> Scanner | None:
        read: dict[str, str] = {}  # wanted name → its group
        converters: list[values.Converter | None] = []
        for name in wanted:
            slots = [
                (group, convert, optional) for slot_name, group, convert, optional in self._slots if slot_name == name
            ]
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
        if sees_newline(regex):
            return None
        # findall's row: the groups in pattern order, then the unanswered line's text
        order = [group for group, _ in sorted(pattern.groupindex.items(), key=lambda item: item[1])]
        return Scanner(pattern, tuple(order.index(read[name]) for name in wanted), tuple(converters))


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
