"""The per-grammar record builder: Python source generated from a grammar's names and converters.

``grammars.lowering`` compiles the source once per grammar. It is straight-line code (one dict
display, converters bound as default arguments, small ones inlined from ``values.INLINE_ATTR``):
a generic loop over fields costs about 30% of the throughput. Nothing in the source comes from
log content: only the grammar's own results names (``repr``) and generated identifiers.

``probe_source`` is the same code for a few wanted names only: it still runs every converter that
may raise (``values.is_total``), so a probe that answers is a line the builder builds, with the
same values for those names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grammars import values

# (results name, group name, converter or None, may be absent)
Slot = tuple[str, str, "values.Converter | None", bool]


@dataclass(slots=True)
class _Plan:
    """The builder's statements: values shared by two names, and one expression per name."""

    env: dict[str, Any] = field(default_factory=dict)
    shared: list[tuple[str, str]] = field(default_factory=list)  # (variable, expression)
    exprs: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name → (expression, total)


def _total(convert: values.Converter | None) -> bool:
    return convert is None or convert is str or values.is_total(convert)


def _plan(names: tuple[str, ...], slots: list[Slot]) -> _Plan:
    plan = _Plan()
    bound: dict[int, str] = {}

    def bind(convert: values.Converter) -> str:
        if id(convert) not in bound:
            bound[id(convert)] = f"c{len(bound)}"
            plan.env[bound[id(convert)]] = convert
        return bound[id(convert)]

    def value(group: str, convert: values.Converter | None) -> str:
        if convert is None:
            return group
        form = values.inline_form(convert)
        if form is None:
            return f"{bind(convert)}({group})"
        template, inner = form
        return template.format(v=group, **{key: bind(fn) for key, fn in inner.items()})

    uses: dict[tuple[str, int], int] = {}
    for _, group, convert, _ in slots:
        uses[group, id(convert)] = uses.get((group, id(convert)), 0) + 1
    shared: dict[tuple[str, int], str] = {}
    for _, group, convert, optional in slots:
        key = (group, id(convert))
        if convert is not None and uses[key] > 1 and key not in shared:
            shared[key] = f"v{len(shared)}"
            expr = value(group, convert)
            plan.shared.append((shared[key], f"({expr} if {group} is not None else None)" if optional else expr))
    for name in names:
        expr = "None"
        total = True
        for slot_name, group, convert, optional in slots:  # later groups win: pyparsing keeps the last match
            if slot_name != name:
                continue
            current = shared.get((group, id(convert))) or value(group, convert)
            already_none = current == group or current in shared.values()  # None when the group is
            if not optional or (already_none and expr == "None"):
                expr, total = current, _total(convert)
            else:
                expr, total = f"({current} if {group} is not None else {expr})", total and _total(convert)
        plan.exprs[name] = (expr, total)
    return plan


def _head(function: str, env: dict[str, Any], group_order: list[str | None], on_miss: str) -> list[str]:
    head = [f"def {function}(line, _match=_match, _miss=_miss, " + "".join(f"{n}={n}, " for n in env) + "):"]
    head += ["    m = _match(line)", "    if m is None:", f"        return {on_miss}"]
    if group_order:
        head.append(f"    ({', '.join(group or '_' for group in group_order)},) = m.groups()")
    return head


def builder_source(
    names: tuple[str, ...], group_order: list[str | None], slots: list[Slot]
) -> tuple[str, dict[str, Any]]:
    """Python source of ``build(line)`` for this grammar, and the converters it binds.

    Straight-line code from the grammar's own names and converters (no loop over fields at run
    time); small converters (``values.INLINE_ATTR``) are inlined, a value shared by two names
    (``time_local`` and ``time``) is converted once.
    """
    plan = _plan(names, slots)
    body = ["    try:"]
    body += [f"        {var} = {expr}" for var, expr in plan.shared]
    body.append("        return {")
    body += [f"            {name!r}: {expr}," for name, (expr, _) in plan.exprs.items()]
    body += [
        "        }",
        "    except Exception:",
        "        return _miss(line)  # pyparsing decides (and locates the error)",
    ]
    return "\n".join(_head("build", plan.env, group_order, "_miss(line)") + body) + "\n", plan.env


def probe_source(
    names: tuple[str, ...], group_order: list[str | None], slots: list[Slot], wanted: tuple[str, ...]
) -> tuple[str, dict[str, Any]]:
    """Python source of ``probe(line)``: the tuple of the ``wanted`` names' values (``None`` for a name
    the grammar lacks) when ``build(line)`` would build the record, else ``None``.

    Every converter that may raise runs, its value dropped when no wanted name needs it: the
    builder's fields are then all computable, and the probe skips only the dict and the total ones.
    """
    plan = _plan(names, slots)
    body = ["    try:"]
    # shared values are few (``time_local`` and ``time``) and names may refer to them: always computed
    body += [f"        {var} = {expr}" for var, expr in plan.shared]
    computed = {var for var, _ in plan.shared}
    body += [
        f"        {expr}"
        for name, (expr, total) in plan.exprs.items()
        if not total and name not in wanted and expr not in computed
    ]
    answer = ", ".join(plan.exprs[name][0] if name in plan.exprs else "None" for name in wanted)
    body += [f"        return ({answer},)", "    except Exception:", "        return None"]
    return "\n".join(_head("probe", plan.env, group_order, "None") + body) + "\n", plan.env
