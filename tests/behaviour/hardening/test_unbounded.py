"""Work bounded by caps, not by what hostile input offers: symlink loops, endless or huge configs (issue #20).

Bounds are asserted by counting (directory listings, bytes, lines), never by the clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grammars.config_errors import ConfigError
from grammars.nginx_include import MAX_CONFIG_LINES, ConfigBudget, read_config_text

REPO = Path(__file__).resolve().parents[3]


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_a_recursive_glob_through_symlink_loops_lists_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glob's ** followed a loop of links until the path was too long: past 120 s and 495 MB
    from processor.io import discovery

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "access.log").write_text("x\n")
    (tmp_path / "a" / "top.log").write_text("x\n")
    (tmp_path / "a" / "b" / "up").symlink_to("..")
    (tmp_path / "a" / "b" / "up2").symlink_to("../..")
    (tmp_path / "a" / "loop").symlink_to(".")
    listings = [0]
    real_scandir = os.scandir

    def counting(path: str = ".") -> os.ScandirIterator[str]:  # type: ignore[type-var]
        listings[0] += 1
        if listings[0] > 1000:
            raise AssertionError("the glob keeps listing directories: a symlink loop is being followed")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    found = discovery.discover([str(tmp_path / "**" / "*.log")])
    assert sorted(f.display for f in found) == [
        str(tmp_path / "a" / "b" / "access.log"),
        str(tmp_path / "a" / "top.log"),
    ]
    assert listings[0] <= 10


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("**/*.log", ["a/b/access.log", "a/top.log", "root.log"]),
        ("a/**/*.log", ["a/b/access.log", "a/top.log"]),
        ("a/**/b/*.log", ["a/b/access.log"]),
        ("*/top.log", ["a/top.log"]),
        ("**/.hidden/*.log", [".hidden/h.log"]),
    ],
)
def test_the_recursive_glob_matches_as_glob_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str, expected: list[str]
) -> None:
    from processor.io import discovery

    for name in ("a/b/access.log", "a/top.log", "root.log", ".hidden/h.log", "a/.dot/x.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    monkeypatch.chdir(tmp_path)
    assert sorted(f.display for f in discovery.discover([pattern])) == expected


def test_a_config_tree_is_read_up_to_its_byte_cap(tmp_path: Path) -> None:
    # --nginx-conf /dev/zero read until MemoryError
    budget = ConfigBudget(max_bytes=4096)
    read = [0]

    class Endless:
        def read(self, n: int) -> str:
            read[0] += n
            return "\0" * n

    with pytest.raises(ConfigError, match="larger than"):
        budget.read(Endless(), "endless.conf")  # type: ignore[arg-type]
    assert read[0] == 4097


def test_the_caps_hold_for_a_tree_not_each_file(tmp_path: Path) -> None:
    budget = ConfigBudget(max_bytes=1 << 20, max_lines=100)
    for i in range(3):
        (tmp_path / f"{i}.conf").write_text("x;\n" * 40)
    read_config_text(str(tmp_path / "0.conf"), budget=budget)
    read_config_text(str(tmp_path / "1.conf"), budget=budget)
    with pytest.raises(ConfigError) as err:
        read_config_text(str(tmp_path / "2.conf"), budget=budget)
    assert err.value.line == 21 and "longer than 100 lines" in str(err.value)


@pytest.mark.parametrize("option", ["--nginx-conf", "--fpm-conf"])
def test_dev_zero_as_a_config_is_one_line(tmp_path: Path, option: str) -> None:
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /x HTTP/1.1" 502 1 "-" "x"\n')
    proc = badgateway("replay", option, "/dev/zero", str(log))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "badgateway: error: /dev/zero: config larger than 16 MiB with its includes:"
        " not a config file? (badgateway reads no more)"
    )


def test_a_huge_nginx_conf_stops_at_the_line_cap(tmp_path: Path) -> None:
    # a 100k-line nginx.conf took 70 s
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + "map $a $b { default 0; }\n" * (MAX_CONFIG_LINES + 10) + "}\n")
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /x HTTP/1.1" 502 1 "-" "x"\n')
    for command in (["replay", "--nginx-conf", str(conf), str(log)], ["check-config", "--nginx-conf", str(conf)]):
        proc = badgateway(*command)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{conf}:{MAX_CONFIG_LINES + 1}: config longer than 50,000 lines" in proc.stderr
