"""`--help` teaches: every option with its default, real examples that parse; errors show the command's usage."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from processor import __version__
from processor.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
PARSER = build_parser()
COMMANDS = sorted(PARSER.commands)  # type: ignore[attr-defined]


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def examples(help_text: str) -> list[str]:
    tail = help_text.split("examples:\n", 1)[1]
    return [line.strip() for line in tail.splitlines() if line.startswith("  ") and "badgateway" in line]


def test_every_command_is_listed() -> None:
    assert set(COMMANDS) >= {"replay", "run", "follow", "filter", "check-config", "grammars", "produce", "completion"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_says_its_default_and_what_it_does(command: str) -> None:
    sub = PARSER.commands[command]  # type: ignore[attr-defined]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        text = formatter._get_help_string(action) or ""
        said = "(required)" if action.required else "(default: "
        assert said in text, (command, action.option_strings, text)
        assert text.split(said)[0].strip(), f"{command} {action.option_strings[0]} has no help text"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_two_or_three_examples_that_parse(command: str) -> None:
    proc = badgateway(command, "--help")
    assert proc.returncode == 0
    for action in PARSER.commands[command]._actions:  # type: ignore[attr-defined]
        for flag in action.option_strings:
            assert flag in proc.stdout
    found = examples(proc.stdout)
    assert 2 <= len(found) <= 3, proc.stdout
    for line in found:
        words = shlex.split(line.split("| ", 1)[-1])
        argv = words[words.index("badgateway") + 1 :]
        argv = argv[: argv.index(">")] if ">" in argv else argv
        args = PARSER.parse_args(argv)
        assert args.command == command


def test_defaults_are_shown_in_help() -> None:
    out = badgateway("replay", "--help").stdout
    assert "(default: 5.0)" in out and "(default: auto)" in out and "(default: - (stdout))" in out


def test_the_top_level_help_has_examples() -> None:
    assert len(examples(badgateway("--help").stdout)) >= 2


def test_an_unknown_flag_shows_the_commands_usage() -> None:
    proc = badgateway("replay", "--bogus", "x.log")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: badgateway replay ")
    assert "--nginx-conf" in proc.stderr  # the command's options, not `badgateway COMMAND`
    assert proc.stderr.strip().splitlines()[-1].startswith("badgateway: error: badgateway replay: unrecognized")


def test_a_missing_option_of_a_command_shows_its_usage() -> None:
    proc = badgateway("check-config")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: badgateway check-config")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version(flag: str) -> None:
    proc = badgateway(flag)
    assert proc.returncode == 0 and proc.stdout.strip() == f"badgateway {__version__}"


def test_run_without_config_says_to_pass_config() -> None:
    proc = badgateway("run")
    assert proc.returncode == 2
    assert "run needs --config FILE" in proc.stderr and "examples/badgateway.toml" in proc.stderr
    assert "inputs.0.topic" not in proc.stderr


def test_grammars_is_a_table_by_default_and_json_on_request() -> None:
    table = badgateway("grammars").stdout.splitlines()
    assert table[0].split() == ["name", "log", "type", "origin", "description"]
    assert any(line.split()[0] == "nginx_access" for line in table[1:])
    rows = [json.loads(line) for line in badgateway("grammars", "--format", "json").stdout.splitlines()]
    assert {"name": "nginx_error", "log_type": "nginx_error", "origin": "builtin"}.items() <= rows[1].items()
