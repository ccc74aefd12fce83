"""Hostile log content stays data: escaped in JSON output, never evaluated, never a shell argument."""

from __future__ import annotations

import ast
from pathlib import Path

import orjson

from processor.core.events import Record, SourceRef
from processor.io.sinks import serialise
from processor.pipeline import Pipeline, PipelineSettings

REPO = Path(__file__).resolve().parents[2]

HOSTILE_ERROR = (
    "2026/11/24 05:42:00 [error] 7#7: *9 connect() to unix:/run/php/www.sock failed (13: Permission "
    'denied) while connecting to upstream, client: 10.0.0.1, server: x, request: "GET /\x1b[2J\x1b]0;pwn'
    '\x07<script>alert(1)</script>$(reboot)`id` HTTP/1.1", upstream: "fastcgi://unix:/run/php/www.sock:"'
    ', host: "x"'
)


def test_control_characters_and_markup_are_escaped_in_json_output() -> None:
    pipeline = Pipeline(PipelineSettings(emit_events=True))
    outs = pipeline.feed(Record(HOSTILE_ERROR, SourceRef("error.log", 1), "nginx_error", "web-1")) + pipeline.flush()
    lines = [serialise(o) for o in outs]
    assert len(lines) == 2  # the event and its incident
    for line in lines:
        assert b"\x1b" not in line and b"\x07" not in line  # no raw terminal escapes reach a SIEM or a tty
        assert b"\\u001b[2J" in line
        doc = orjson.loads(line)
        assert doc  # valid JSON, the markup kept as text
    incident = orjson.loads(lines[1])
    assert incident["badgateway"]["cause"] == "socket_permission"
    assert "<script>alert(1)</script>$(reboot)`id`" in incident["url"]["original"]


def _calls(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            names.append(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
            for kw in node.keywords:
                if kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                    names.append("shell=True")
    return names


def test_no_eval_exec_or_shell_on_log_content() -> None:
    for path in sorted((REPO / "processor").rglob("*.py")) + sorted((REPO / "grammars").rglob("*.py")):
        calls = _calls(path)
        assert "eval" not in calls and "system" not in calls and "shell=True" not in calls, path
        if "exec" in calls:
            # the lowering compiles a record builder generated from the grammar's own names, once
            assert path.name == "lowering.py", path
