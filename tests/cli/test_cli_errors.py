"""User errors: one clear line naming file(:line), exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def badgateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_missing_input(tmp_path: Path) -> None:
    proc = badgateway("replay", str(tmp_path / "nope.log"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("badgateway: error: ") and "nope.log" in proc.stderr


def test_unknown_file_type(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("dear diary\nnothing here is a log line\n")
    proc = badgateway("replay", str(junk))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{junk}: cannot tell which log this is" in proc.stderr and "--type" in proc.stderr


def test_broken_nginx_conf_names_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp {\n    server {\n        listen 80\n    }\n")
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET / HTTP/1.1" 502 1 "-" "x"\n')
    proc = badgateway("replay", "--nginx-conf", str(conf), str(log))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{conf}:" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_report_and_dead_letters_are_written(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        '1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /x HTTP/1.1" 502 1 "-" "x"\ngarbage that is no log line\n'
    )
    proc = badgateway(
        "replay",
        "-q",
        "--type",
        "nginx_access",
        "--report",
        str(tmp_path / "r.html"),
        "--dead-letter",
        str(tmp_path / "dead.jsonl"),
        "-o",
        str(tmp_path / "inc.jsonl"),
        str(log),
    )
    assert proc.returncode == 0, proc.stderr
    assert "<svg" in (tmp_path / "r.html").read_text()
    assert '"source":"' + str(log) + ':2"' in (tmp_path / "dead.jsonl").read_text()
    assert (tmp_path / "inc.jsonl").read_text().count("\n") == 1
