"""`--fpm-conf` takes files, directories and globs; a wrong file gets a located, human message; check-config
names the checks it could not run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from processor.configs.knowledge import fpm_conf_paths, load_knowledge
from processor.core.errors import UserConfigError

REPO = Path(__file__).resolve().parents[2]
CONF = "examples/lab/conf"
MASTERS = [f"{CONF}/php-fpm-legacy.conf", f"{CONF}/php-fpm-reports.conf", f"{CONF}/php-fpm.conf"]


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


@pytest.mark.parametrize(
    "specs, wanted",
    [
        # a directory: the masters in it (pool.d/*.conf are theirs to include)
        ([CONF], MASTERS),
        ([f"{CONF}/php-fpm*.conf"], MASTERS),
        ([f"{CONF}/php-fpm.conf"], [f"{CONF}/php-fpm.conf"]),
        # each once, in the order given
        ([f"{CONF}/php-fpm.conf", CONF], [f"{CONF}/php-fpm.conf", *MASTERS[:2]]),
        (["examples/l*b/conf"], MASTERS),  # a glob of directories (examples/lab-json/conf is not matched)
    ],
)
def test_files_directories_and_globs(specs: list[str], wanted: list[str]) -> None:
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        assert fpm_conf_paths(specs) == wanted
    finally:
        os.chdir(cwd)


def test_root_rebases_absolute_globs(tmp_path: Path) -> None:
    fpm = tmp_path / "etc" / "php" / "8.2" / "fpm"
    fpm.mkdir(parents=True)
    (fpm / "php-fpm.conf").write_text("[www]\nlisten = /run/php/www.sock\n")
    assert fpm_conf_paths(["/etc/php/*/fpm"], root=str(tmp_path)) == ["/etc/php/8.2/fpm/php-fpm.conf"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("/nonexistent/*/php-fpm.conf", "no file matches"),
        ("examples/lab/logs", "a directory with no php-fpm*.conf"),
    ],
)
def test_a_spec_that_finds_nothing_is_an_error(spec: str, message: str) -> None:
    with pytest.raises(UserConfigError, match=re.escape(message)):
        fpm_conf_paths([str(REPO / spec) if not spec.startswith("/") else spec])


def test_the_same_answer_from_a_directory_as_from_three_flags() -> None:
    three = load_knowledge(str(REPO / CONF / "nginx.conf"), [str(REPO / p) for p in MASTERS])
    one = load_knowledge(str(REPO / CONF / "nginx.conf"), [str(REPO / CONF)])
    assert one.topology == three.topology


def test_readme_first_command_passes_fpm_conf_once() -> None:
    readme = (REPO / "README.md").read_text()
    first = next(line for line in readme.splitlines() if "badgateway replay" in line)
    assert first.count("--fpm-conf") == 1
    ci = (REPO / ".ci" / "run").read_text()
    assert "--fpm-conf examples/lab/conf examples/lab/logs" in ci
    argv = first.split("badgateway ", 1)[1].split()
    proc = badgateway(*argv, "-o", "/dev/null")
    assert proc.returncode == 0, proc.stderr
    assert "fpm_down" in proc.stderr and "socket_missing" not in proc.stderr


@pytest.mark.parametrize(
    "command", [["replay", "-q", "-o", "/dev/null"], ["check-config", "--nginx-conf", f"{CONF}/nginx.conf"]]
)
def test_nginx_conf_passed_as_fpm_conf_is_named_for_what_it_is(command: list[str]) -> None:
    extra = ["examples/lab/logs/error.log"] if command[0] == "replay" else []
    proc = badgateway(*command, "--fpm-conf", f"{CONF}/nginx.conf", *extra)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert re.search(r"examples/lab/conf/nginx\.conf:\d+: this is an nginx config", line), line
    assert "pass it as --nginx-conf" in line
    assert "column" not in line and "Expected" not in line


def test_a_broken_fpm_line_is_quoted_not_parser_columns(tmp_path: Path) -> None:
    conf = tmp_path / "php-fpm.conf"
    conf.write_text("[www]\nlisten = /run/php/www.sock\nthis is not ini\n")
    proc = badgateway("check-config", "--nginx-conf", f"{CONF}/nginx.conf", "--fpm-conf", str(conf))
    assert proc.returncode == 2
    assert f"{conf}:3: not a php-fpm.conf line: 'this is not ini'" in proc.stderr, proc.stderr


def test_check_config_without_fpm_conf_says_what_did_not_run() -> None:
    proc = badgateway("check-config", "--nginx-conf", f"{CONF}/nginx.conf")
    assert "not_checked: no --fpm-conf: the PHP-FPM checks did not run" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("0 errors, 0 warnings, 1 info") and "not a clean bill of health" in last
    rows = [
        json.loads(line)
        for line in badgateway(
            "check-config", "--nginx-conf", f"{CONF}/nginx.conf", "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert [r["code"] for r in rows if r["code"] == "not_checked"] == ["not_checked"]


def test_check_config_with_fpm_conf_has_nothing_unchecked() -> None:
    proc = badgateway("check-config", "--nginx-conf", f"{CONF}/nginx.conf", "--fpm-conf", CONF)
    assert "not_checked" not in proc.stdout and "clean bill" not in proc.stdout


def test_check_config_json_is_json_lines_under_either_name() -> None:
    args = ["check-config", "--nginx-conf", f"{CONF}/nginx.conf", "--fpm-conf", CONF, "--format"]
    jsonl, json_ = badgateway(*args, "jsonl").stdout, badgateway(*args, "json").stdout
    assert jsonl == json_ and all(json.loads(line)["code"] for line in jsonl.splitlines())
    assert "JSON Lines" in badgateway("check-config", "--help").stdout
