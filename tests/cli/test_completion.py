"""`badgateway completion bash|zsh|fish`: each script is run in its real shell and asked to complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def script(tmp_path: Path, shell: str) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "completion", shell],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    path = tmp_path / f"badgateway.{shell}"
    path.write_text(proc.stdout)
    return path


def need(shell: str) -> str:
    found = shutil.which(shell)
    if found is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    return found


# (words typed so far, the word being completed, what must be offered)
CASES = [
    ([], "rep", {"replay"}),
    ([], "", {"replay", "run", "check-config", "completion", "produce"}),
    (["replay"], "--fpm", {"--fpm-conf"}),
    (["replay"], "--ty", {"--type"}),
    (["replay", "--type"], "nginx_", {"nginx_access", "nginx_error"}),
    (["check-config"], "--for", {"--format"}),
    (["check-config", "--format"], "j", {"json", "jsonl"}),
    (["completion"], "", {"bash", "zsh", "fish"}),
    (["filter", "--envelope"], "f", {"filebeat", "fluentbit"}),
]


def bash_complete(path: Path, words: list[str], cur: str) -> set[str]:
    line = " ".join(["badgateway", *words, repr(cur) if cur else "''"])
    code = textwrap.dedent(f"""
        source {path}
        COMP_WORDS=({line}); COMP_CWORD=${{#COMP_WORDS[@]}}; COMP_CWORD=$((COMP_CWORD - 1))
        _badgateway
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """)
    out = subprocess.run(
        [need("bash"), "--norc", "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO, check=True
    ).stdout
    return set(out.split())


def fish_complete(path: Path, words: list[str], cur: str) -> set[str]:
    line = " ".join(["badgateway", *words, cur])
    out = subprocess.run(
        [need("fish"), "--no-config", "-c", f"source {path}; complete -C '{line}'"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=True,
    ).stdout
    return {row.split("\t")[0] for row in out.splitlines()}


ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "exec 2>>$OUT"
zpty -w z "PS1=''; autoload -Uz compinit; compinit -u -D; source $SCRIPT"
zpty -w z 'comptest() { compadd() { local -a __hits; builtin compadd -O __hits "$@"; print -l -- $__hits >&2; builtin compadd "$@"; }; _main_complete "$@"; }'
zpty -w z "zle -C complete-word complete-word comptest; bindkey '^I' complete-word"
zpty -w -n z "$LINE"$'\t'
sleep 2
zpty -d z
"""


def zsh_complete(path: Path, words: list[str], cur: str, tmp_path: Path) -> set[str]:
    out = tmp_path / "zsh.out"
    out.write_text("")
    driver = tmp_path / "driver.zsh"
    driver.write_text(ZSH_DRIVER)
    env = {**os.environ, "OUT": str(out), "SCRIPT": str(path), "LINE": " ".join(["badgateway", *words, cur])}
    subprocess.run([need("zsh"), "-f", str(driver)], env=env, timeout=30, cwd=REPO, capture_output=True)
    return set(out.read_text().split())


@pytest.mark.parametrize("words, cur, wanted", CASES)
def test_bash_completes(tmp_path: Path, words: list[str], cur: str, wanted: set[str]) -> None:
    assert wanted <= bash_complete(script(tmp_path, "bash"), words, cur)


@pytest.mark.parametrize("words, cur, wanted", CASES)
def test_fish_completes(tmp_path: Path, words: list[str], cur: str, wanted: set[str]) -> None:
    assert wanted <= fish_complete(script(tmp_path, "fish"), words, cur)


@pytest.mark.parametrize("words, cur, wanted", [CASES[0], CASES[2], CASES[4], CASES[7]])
def test_zsh_completes(tmp_path: Path, words: list[str], cur: str, wanted: set[str]) -> None:
    path = script(tmp_path, "zsh")
    subprocess.run([need("zsh"), "-n", str(path)], check=True, timeout=30)
    assert wanted <= zsh_complete(path, words, cur, tmp_path)


def test_bash_offers_files_for_a_path_option(tmp_path: Path) -> None:
    offered = bash_complete(script(tmp_path, "bash"), ["replay", "--nginx-conf"], "examples/lab/conf/ngi")
    assert offered == {"examples/lab/conf/nginx.conf"}
