"""Imports flow one way between processor/'s folders (docs/ARCHITECTURE.md, "Layers"):

    cli → runners → io, configs → pipeline → diagnosis → core → grammars

A module may import its own layer and the layers below, never one above; ``io`` and ``configs`` are siblings
that do not import each other. Lazy imports inside functions count too: a pull the wrong way is a pull.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RANK = {"grammars": 0, "core": 1, "diagnosis": 2, "pipeline": 3, "io": 4, "configs": 4, "runners": 5, "cli": 6}
MAX_LINES = 380  # "no module over ~350 lines"


def layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "grammars":
        return "grammars"
    if parts[0] != "processor" or len(parts) < 2:
        return None
    if parts[1].startswith("pipeline"):  # pipeline.py and its parts (pipeline_blocks, pipeline_types)
        return "pipeline"
    return parts[1] if parts[1] in RANK else None


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def modules() -> list[tuple[Path, str]]:
    out = []
    for path in sorted([*(REPO / "processor").rglob("*.py"), *(REPO / "grammars").rglob("*.py")]):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        if layer(name) is not None:
            out.append((path, name))
    return out


def test_imports_flow_one_way() -> None:
    wrong = []
    for path, name in modules():
        mine = layer(name)
        assert mine is not None
        for lineno, target in imports(path):
            theirs = layer(target)
            if theirs is None or theirs == mine:
                continue
            sideways = {mine, theirs} == {"io", "configs"}
            if RANK[theirs] > RANK[mine] or sideways:
                wrong.append(f"{path.relative_to(REPO)}:{lineno}: {mine} imports {target} ({theirs})")
    assert not sorted(set(wrong)), "\n".join(sorted(set(wrong)))


def test_the_core_is_pure() -> None:
    """No files, sockets, clocks of the wall or processes in processor/core and processor/diagnosis."""
    impure = {"socket", "subprocess", "threading", "multiprocessing", "os", "shutil", "signal", "select"}
    found = []
    for path, name in modules():
        if layer(name) in ("core", "diagnosis"):
            for lineno, target in imports(path):
                if target.split(".")[0] in impure:
                    found.append(f"{path.relative_to(REPO)}:{lineno}: {target}")
            source = path.read_text()
            for call in ("time.time(", "time.monotonic(", "datetime.now(", "open("):
                if re.search(r"(?<![\w.])" + re.escape(call), source):
                    found.append(f"{path.relative_to(REPO)}: calls {call}")
    assert not found, "\n".join(found)


def test_no_module_is_a_grab_bag() -> None:
    long = [
        f"{p.relative_to(REPO)}: {n} lines" for p, _ in modules() if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "split these by job:\n" + "\n".join(long)
