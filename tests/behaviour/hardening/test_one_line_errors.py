"""Every CLI error is one located line and exit 2, never a traceback (issue #20)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def badgateway(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        input=stdin,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("badgateway: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    path.write_text('1.2.3.4 - - [24/Nov/2026:05:00:00 +0000] "GET /x HTTP/1.1" 502 1 "-" "x"\n')
    return path


@pytest.mark.parametrize(
    "stamp", ["31/Dec/9999:23:59:59 -0100", "01/Jan/0001:00:00:01 +0100"], ids=["into-10000", "into-0"]
)
def test_a_time_crossing_the_year_range_does_not_break_the_summary_or_report(tmp_path: Path, stamp: str) -> None:
    # summary.format_ts raised "year 10000 is out of range" after the whole run; such a time is now
    # dead-lettered with its reason (an incident's @timestamp cannot carry it: processor.core.parse.MAX_TS_MS)
    path = tmp_path / "access.log"
    path.write_text(f'1.2.3.4 - - [{stamp}] "GET /x HTTP/1.1" 502 1 "-" "x"\n')
    proc = badgateway(
        "replay",
        "-o",
        str(tmp_path / "i.jsonl"),
        "--dead-letter",
        str(tmp_path / "d.jsonl"),
        "--report",
        str(tmp_path / "r.html"),
        str(path),
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "parsed 0 + dead-lettered 1" in proc.stderr
    assert "outside years 1-9999" in (tmp_path / "d.jsonl").read_text()
    assert (tmp_path / "i.jsonl").read_text() == ""
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_format_ts_at_the_edges() -> None:
    from processor.cli.summary import format_ts

    assert format_ts(253402300799_000) == "9999-12-31 23:59:59Z"
    assert "outside years" in format_ts(253402300800_000)
    assert "outside years" in format_ts(-62135596801_000)
    assert format_ts(-62135596800_000) == "0001-01-01 00:00:00Z"


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("replay", "--host-pattern", "(?P<host"),
        ("replay", "--allowed-lateness", "inf"),
        ("replay", "--allowed-lateness", "nan"),
        ("replay", "--allowed-lateness", "-1"),
        ("replay", "--idle-timeout", "nan"),
        ("replay", "--workers", "0"),
        ("follow", "--poll-interval", "-1"),
        ("follow", "--poll-interval", "nan"),
        ("follow", "--poll-interval", "inf"),
        ("follow", "--poll-interval", "0"),
        ("filter", "--allowed-lateness", "inf"),
    ],
)
def test_a_bad_option_is_one_line(log: Path, command: str, option: str, value: str) -> None:
    paths = [] if command == "filter" else [str(log)]
    line = one_error_line(badgateway(command, option, value, *paths))
    assert option in line and value in line


def test_filter_dead_letter_in_a_missing_directory(tmp_path: Path) -> None:
    line = one_error_line(badgateway("filter", "--dead-letter", str(tmp_path / "nonexistent" / "x"), stdin="x\n"))
    assert "does not exist" in line


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xffgarbage",
        b"[]",
        b'"files"',
        b'{"files": []}',
        b'{"files": {"LOG": {"inode": 1, "offset": -5, "line": 0}}}',
        b'{"files": {"LOG": {"inode": 1, "offset": "12", "line": 0}}}',
        b'{"files": {"LOG": "12"}}',
        b"{",
    ],
    ids=["garbage", "list", "string", "files-list", "negative", "offset-string", "entry-string", "cut"],
)
def test_follow_refuses_a_state_file_it_did_not_write(tmp_path: Path, log: Path, content: bytes) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content.replace(b"LOG", str(log).encode()))
    line = one_error_line(badgateway("follow", "--state-file", str(state), "-o", str(tmp_path / "i.jsonl"), str(log)))
    assert str(state) in line


def test_follow_takes_an_empty_state_file_as_no_state(tmp_path: Path, log: Path) -> None:
    from processor.cli.main import build_parser
    from processor.runners.settings import build_pipeline
    from processor.runners.tail import Follower

    state = tmp_path / "state.json"
    state.write_bytes(b"")
    pipeline, _ = build_pipeline(build_parser().parse_args(["follow", str(log)]), emit_events=False)
    follower = Follower(
        pipeline, [str(log)], host=None, forced_type=None, format_by_base={}, forced_format=None, state_file=str(state)
    )
    outputs = follower.poll() + pipeline.flush()
    assert [o.kind for o in outputs].count("incident") == 1


def test_follow_state_file_in_a_missing_directory_is_refused_at_start(tmp_path: Path, log: Path) -> None:
    # it failed after 2 s, losing the incident held in its window
    line = one_error_line(badgateway("follow", "--state-file", str(tmp_path / "missing" / "s.json"), str(log)))
    assert "does not exist" in line


def test_parallel_replay_of_a_truncated_gz_is_one_line(tmp_path: Path, log: Path) -> None:
    # a child traceback and a parent EOFError
    text = "".join(
        f'1.2.3.4 - - [24/Nov/2026:05:00:{i % 60:02d} +0000] "GET /p{i} HTTP/1.1" 200 1 "-" "x"\n'
        for i in range(50_000)
    )
    data = gzip.compress(text.encode())
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(data[: len(data) // 2])
    for order in ([cut, log], [log, cut]):
        line = one_error_line(
            badgateway("replay", "-q", "--workers", "2", "-o", str(tmp_path / "i.jsonl"), *map(str, order))
        )
        assert f"{cut}:" in line and "ends early" in line
