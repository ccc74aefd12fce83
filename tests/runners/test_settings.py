"""One settings builder for every driver: the flags of replay/follow/filter and the service's [diagnosis] section
describe the same pipeline, grammar plugins included (issue #24: four places where the two builders disagreed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.cli.main import build_parser
from processor.core.errors import UserConfigError
from processor.core.events import Record, SourceRef
from processor.runners.service import pipeline_factory
from processor.runners.service_config import load_config
from processor.runners.settings import build_pipeline, settings_from_args, settings_from_service

REPO = Path(__file__).resolve().parents[2]

# a multi-line log added from outside: an entry starts with "TINY|<epoch>|", its continuation lines are indented
PLUGIN = """
from datetime import datetime, timezone
from grammars.plugins import GrammarPlugin
from grammars.result import ParseError

def _parse(entry):
    parts = entry.split("|", 2)
    if len(parts) != 3 or parts[0] != "TINY":
        return ParseError("not a TINY entry", 1, entry)
    return {"time": datetime.fromtimestamp(int(parts[1]), timezone.utc), "message": parts[2]}

PLUGIN = GrammarPlugin(name="tiny", parse=_parse, detect=lambda line: line.startswith("TINY|"),
                       is_entry_start=lambda line: line.startswith("TINY|"), description="a multi-line test grammar")
"""


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin installed as a distribution with an entry point, on this process's path and its children's."""
    site = tmp_path / "site"
    (site / "tiny_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "tiny_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (site / "tiny_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n"
    )
    (site / "tiny_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[badgateway.grammars]\ntiny = tiny_plugin:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("tiny_plugin", None)


def _service_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "badgateway.toml"
    path.write_text(textwrap.dedent(body))
    return path


# every window option, as the service's [diagnosis] below sets them
WINDOW_OPTIONS = [
    *("--match-window", "3", "--evidence-window", "7.5", "--max-state", "1000"),
    *("--allowed-lateness", "2", "--idle-timeout", "9"),
]


def test_the_cli_can_set_every_window_the_service_can(tmp_path: Path) -> None:
    args = build_parser().parse_args(["replay", "x.log", *WINDOW_OPTIONS])
    join = build_pipeline(args, emit_events=False)[0].settings.join
    assert (join.match_window_ms, join.evidence_window_ms, join.max_state) == (3000, 7500, 1000)
    assert (join.allowed_lateness_ms, join.idle_timeout_ms) == (2000, 9000)


def test_the_same_settings_from_flags_and_from_the_service_config(tmp_path: Path) -> None:
    config = load_config(
        str(
            _service_config(
                tmp_path,
                """
        [[inputs]]
        topic = "logs"
        [diagnosis]
        timezone = "Europe/Paris"
        match_window_s = 3.0
        evidence_window_s = 7.5
        max_state = 1000
        allowed_lateness_s = 2.0
        idle_timeout_s = 9.0
    """,
            )
        )
    )
    args = build_parser().parse_args(["filter", "--timezone", "Europe/Paris", *WINDOW_OPTIONS])
    assert settings_from_args(args, emit_events=False) == settings_from_service(config)
    make, _ = pipeline_factory(config)
    assert make().settings == build_pipeline(args, emit_events=False)[0].settings


def test_a_plugin_type_is_accepted_by_the_service_and_its_plugin_loads_in_run(
    plugin_site: Path, tmp_path: Path
) -> None:
    config = load_config(
        str(
            _service_config(
                tmp_path,
                """
        [[inputs]]
        topic = "tiny-logs"
        type = "tiny"
    """,
            )
        )
    )
    pipeline = pipeline_factory(config)[0]()
    outs = pipeline.feed(Record("TINY|1795500000|hello", SourceRef("tiny-logs/0", 1), "tiny", "web-1", None))
    outs += pipeline.flush()
    assert pipeline.counters.lines_parsed == 1 and pipeline.counters.lines_dead_lettered == 0
    with pytest.raises(UserConfigError, match="inputs.0.type"):
        load_config(
            str(
                _service_config(
                    tmp_path,
                    """
            [[inputs]]
            topic = "x"
            type = "not_installed"
        """,
                )
            )
        )


def test_a_plugins_multi_line_entries_are_assembled(plugin_site: Path, tmp_path: Path) -> None:
    log = tmp_path / "tiny.log"
    log.write_text("TINY|1795500000|first\n  continued\n  and again\nTINY|1795500001|second\n")
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{plugin_site}{os.pathsep}{REPO}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "replay",
            "-q",
            "--type",
            "tiny",
            str(log),
            "--events",
            str(events),
            "-o",
            str(tmp_path / "incidents.jsonl"),
        ],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    docs = [json.loads(line) for line in events.read_text().splitlines()]
    assert [d["badgateway"]["fields"]["message"] for d in docs] == ["first\n  continued\n  and again", "second"]
