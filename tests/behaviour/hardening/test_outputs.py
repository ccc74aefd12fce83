"""Outputs never destroy an input and never end in half a line: refused before reading, checked at start,
stopped with one line on a full disk (issue #20)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FAIL_502 = '1.2.3.4 - - [24/Nov/2026:05:00:{s:02d} +0000] "GET /x{n} HTTP/1.1" 502 1 "-" "x"\n'


def badgateway(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        input=stdin,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("badgateway: error: "), proc.stderr
    return lines[0]


def access_log(path: Path, n: int = 20) -> str:
    text = "".join(FAIL_502.format(s=i % 60, n=i) for i in range(n))
    path.write_text(text)
    return text


@pytest.mark.parametrize("option", ["-o", "--events", "--dead-letter", "--report"])
def test_an_output_that_is_the_input_is_refused_before_reading(tmp_path: Path, option: str) -> None:
    # replay -o access.log access.log used to truncate the input and report "lines read 0"
    log = tmp_path / "access.log"
    text = access_log(log)
    line = one_error_line(badgateway("replay", "-q", option, str(log), str(log)))
    assert "refusing to overwrite" in line and str(log) in line
    assert log.read_text() == text


def test_the_same_file_through_another_name_is_refused(tmp_path: Path) -> None:
    # device and inode, not the name: a hard link and a symlink are the same file
    log = tmp_path / "access.log"
    text = access_log(log)
    os.link(log, tmp_path / "hard.jsonl")
    os.symlink(log, tmp_path / "soft.jsonl")
    for out in ("hard.jsonl", "soft.jsonl"):
        one_error_line(badgateway("replay", "-q", "-o", str(tmp_path / out), str(tmp_path)))
        assert log.read_text() == text


def test_stdout_appending_to_the_input_is_refused(tmp_path: Path) -> None:
    # `replay access.log >> access.log` would read its own output back, growing without end
    log = tmp_path / "access.log"
    text = access_log(log)
    with open(log, "a") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "processor.cli", "replay", "-q", str(log)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    assert proc.returncode == 2 and "refusing to overwrite" in proc.stderr
    assert log.read_text() == text


def test_follow_and_filter_refuse_their_input_as_output(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    text = access_log(log)
    one_error_line(badgateway("follow", "--dead-letter", str(log), str(log)))
    assert log.read_text() == text
    with open(log) as stdin:
        proc = subprocess.run(
            [sys.executable, "-m", "processor.cli", "filter", "--events", str(log)],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    one_error_line(proc)
    assert log.read_text() == text


@pytest.mark.parametrize("option", ["-o", "--events", "--dead-letter", "--report"])
@pytest.mark.parametrize("where", ["missing-dir", "is-a-dir"])
def test_an_unwritable_output_is_found_at_start(tmp_path: Path, option: str, where: str) -> None:
    log = tmp_path / "access.log"
    access_log(log)
    target = tmp_path / "nonexistent" / "out" if where == "missing-dir" else tmp_path
    line = one_error_line(badgateway("replay", "-q", option, str(target), str(log)))
    assert str(target) in line


def test_a_read_only_directory_is_found_at_start(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    log = tmp_path / "access.log"
    access_log(log)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert "not writable" in one_error_line(badgateway("replay", "-q", "-o", str(ro / "x.jsonl"), str(log)))


@pytest.mark.parametrize("option", ["-o", "--events", "--dead-letter"])
def test_dev_full_stops_with_one_line(tmp_path: Path, option: str) -> None:
    log = tmp_path / "access.log"
    access_log(log)
    (tmp_path / "junk.log").write_text("")
    with open(log, "a") as fh:
        fh.write("garbage that is no log line\n")
    args = ["replay", "-q", "--type", "nginx_access", option, "/dev/full", str(log)]
    line = one_error_line(badgateway(*args))
    assert "/dev/full: no space left on device" in line


def test_dev_full_as_stdout_and_report(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    access_log(log)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "processor.cli", "replay", "-q", str(log)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            timeout=120,
        )
    one_error_line(proc)
    assert "no space left on device" in one_error_line(
        badgateway("replay", "-q", "-o", str(tmp_path / "i.jsonl"), "--report", "/dev/full", str(log))
    )


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_tmpfs_keeps_whole_json_lines(tmp_path: Path, tiny_tmpfs: Path) -> None:
    log = tmp_path / "access.log"
    access_log(log, 2000)  # ~2000 incidents, ~1.5 MB of JSON: far more than 64 KiB
    out = tiny_tmpfs / "incidents.jsonl"
    line = one_error_line(badgateway("replay", "-q", "-o", str(out), str(log)))
    assert "no space left on device" in line
    data = out.read_bytes()
    assert data and data.endswith(b"\n")
    for text in data.splitlines():
        json.loads(text)  # every line whole


def test_an_already_full_tmpfs_is_refused_at_start(tmp_path: Path, tiny_tmpfs: Path) -> None:
    filler = tiny_tmpfs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    log = tmp_path / "access.log"
    access_log(log)
    line = one_error_line(badgateway("replay", "-q", "-o", str(tiny_tmpfs / "i.jsonl"), str(log)))
    assert "no space left on device" in line
