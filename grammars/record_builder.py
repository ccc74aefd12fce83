"""The per-grammar record builder: Python source generated from a grammar's names and converters.

``grammars.lowering`` compiles the source once per grammar. It is straight-line code (one dict
display, converters bound as default arguments, small ones inlined from ``values.INLINE_ATTR``):
a generic loop over fields costs about 30% of the throughput. Nothing in the source comes from
log content: only the grammar's own results names (``repr``) and generated identifiers.
"""

from __future__ import annotations

from typing import Any

from grammars import values

# (results name, group name, converter or None, may be absent)
Slot = tuple[str, str, "values.Converter | None", bool]


def builder_source(
    names: tuple[str, ...], group_order: list[str | None], slots: list[Slot]
) -> tuple[str, dict[str, Any]]:
    """Python source of ``build(line)`` for this grammar, and the converters it binds.

    Straight-line code from the grammar's own names and converters (no loop over fields at run
    time); small converters (``values.INLINE_ATTR``) are inlined, a value shared by two names
    (``time_local`` and ``time``) is converted once.
    """
    bound: dict[int, str] = {}
    env: dict[str, Any] = {}

    def bind(convert: values.Converter) -> str:
        if id(convert) not in bound:
            bound[id(convert)] = f"c{len(bound)}"
            env[bound[id(convert)]] = convert
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
    body = ["    try:"]
    shared: dict[tuple[str, int], str] = {}
    for _, group, convert, optional in slots:
        key = (group, id(convert))
        if convert is not None and uses[key] > 1 and key not in shared:
            shared[key] = f"v{len(shared)}"
            expr = value(group, convert)
            body.append(f"        {shared[key]} = {f'({expr} if {group} is not None else None)' if optional else expr}")
    body.append("        return {")
    for name in names:
        expr = "None"
        for slot_name, group, convert, optional in slots:  # later groups win: pyparsing keeps the last match
            if slot_name != name:
                continue
            current = shared.get((group, id(convert))) or value(group, convert)
            already_none = current == group or current in shared.values()  # None when the group is
            if not optional or (already_none and expr == "None"):
                expr = current
            else:
                expr = f"({current} if {group} is not None else {expr})"
        body.append(f"            {name!r}: {expr},")
    body += ["        }", "    except Exception:", "        return _miss(line)  # pyparsing decides (and locates the error)"]
    head = ["def build(line, _match=_match, _miss=_miss, " + "".join(f"{n}={n}, " for n in env) + "):"]
    head += ["    m = _match(line)", "    if m is None:", "        return _miss(line)"]
    if group_order:
        head.append(f"    ({', '.join(group or '_' for group in group_order)},) = m.groups()")
    return "\n".join(head + body) + "\n", env
