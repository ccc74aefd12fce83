"""No raw escape sequence from a config or a file name reaches the terminal (issue #20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ESC = "\x1b"


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def no_control(text: str) -> None:
    assert ESC not in text and "\r" not in text and "\x07" not in text, repr(text)


def test_check_config_escapes_pool_and_log_format_names(tmp_path: Path) -> None:
    nginx = tmp_path / "nginx.conf"
    nginx.write_text(
        'events {}\nhttp {\n log_format "m\x1b[31mred" "$remote_addr";\n'
        ' access_log /var/log/x.log "m\x1b]0;pwned\x07";\n'
        " server { location ~ \\.php$ { fastcgi_pass unix:/run/php/x\x1b[5m.sock; } }\n}\n"
    )
    fpm = tmp_path / "php-fpm.conf"
    fpm.write_text("[global]\n[po\x1b[31mol]\nlisten = /run/php/other.sock\npm = static\npm.max_children = 1\n")
    proc = badgateway("check-config", "--nginx-conf", str(nginx), "--fpm-conf", str(fpm))
    assert proc.returncode == 1, proc.stderr
    no_control(proc.stdout)
    assert "po\\x1b[31mol" in proc.stdout and "m\\x1b]0;pwned\\x07" in proc.stdout


def test_check_config_error_line_escapes_the_file_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad\x1b[2Jname.conf"
    bad.write_text("events {\n")
    proc = badgateway("check-config", "--nginx-conf", str(bad))
    assert proc.returncode == 2
    no_control(proc.stderr)
    assert "bad\\x1b[2Jname.conf" in proc.stderr


@pytest.mark.parametrize("name", ["no\x1b[31mfile.log", "cr\rline.log", "new\nline.log"])
def test_an_error_line_escapes_a_hostile_file_name(tmp_path: Path, name: str) -> None:
    proc = badgateway("replay", str(tmp_path / name))
    assert proc.returncode == 2
    no_control(proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_bad_option_value_is_escaped(tmp_path: Path) -> None:
    proc = badgateway("replay", "--timezone", "Europe/\x1b[31mParis", str(tmp_path))
    assert proc.returncode == 2
    no_control(proc.stderr)
