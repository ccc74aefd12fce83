"""`follow` under hostile writers: a file truncated and regrown between polls, bursts, endless lines (#20).

In-process and deterministic: the test is the writer and calls ``poll`` itself; bounds are counted in bytes and
lines, never timed.
"""

from __future__ import annotations

import os
from pathlib import Path

from processor.cli.main import build_parser
from processor.pipeline import Output
from processor.runners.settings import build_pipeline
from processor.runners.tail import _READ_BYTES, Follower


def follower(path: Path, *extra: str, max_line_bytes: int | None = None) -> Follower:
    args = build_parser().parse_args(["follow", "--type", "nginx_access", *extra, str(path)])
    pipeline, _ = build_pipeline(args, emit_events=bool(args.events))
    kwargs = {} if max_line_bytes is None else {"max_line_bytes": max_line_bytes}
    return Follower(
        pipeline,
        [str(path)],
        host=None,
        forced_type="nginx_access",
        format_by_base={},
        forced_format=None,
        state_file=None,
        clock=lambda: 1.8e9,
        **kwargs,
    )


def line(i: int, status: int = 502, second: int = 0) -> bytes:
    return (
        f'10.0.{i // 250 % 250}.{i % 250} - - [24/Nov/2026:05:00:{second:02d} +0000] "GET /r{i} HTTP/1.1" '
        f'{status} 1 "-" "x"\n'
    ).encode()


def incidents(outputs: list[Output]) -> list[str]:
    return sorted(o.value["url"]["original"] for o in outputs if o.kind == "incident")


def test_a_file_truncated_and_regrown_past_the_offset_loses_no_line(tmp_path: Path) -> None:
    # copytruncate, then a burst larger than what was read, all between two polls: the size says "grew",
    # the same inode says "same file"; only the first bytes tell it was rewritten (10 incidents were lost)
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(line(i, second=1) for i in range(5)))
    f = follower(log)
    out = f.poll()
    with open(log, "r+b") as fh:  # truncate in place: the inode stays
        fh.truncate(0)
        fh.write(b"".join(line(100 + i, second=2) for i in range(10)))
    assert os.path.getsize(log) > f.files[str(log)].offset
    out += f.poll() + f.pipeline.flush()
    assert incidents(out) == sorted([f"/r{i}" for i in range(5)] + [f"/r{100 + i}" for i in range(10)])
    c = f.pipeline.counters
    assert c.lines_in == 15 == c.lines_parsed + c.lines_dead_lettered


def test_an_appended_file_is_not_mistaken_for_a_rewritten_one(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line(0))
    f = follower(log)
    out = f.poll()
    with open(log, "ab") as fh:
        fh.write(line(1))
    out += f.poll() + f.pipeline.flush()
    assert incidents(out) == ["/r0", "/r1"]
    assert f.pipeline.counters.lines_in == 2


def test_a_burst_is_read_a_bounded_share_per_poll(tmp_path: Path) -> None:
    # a burst of lines was read in one poll, and every output of it held at once (271 MB on 1M lines)
    log = tmp_path / "access.log"
    burst = b"".join(line(i, status=200 if i % 100 else 502) for i in range(60_000))  # ~5 MB
    log.write_bytes(burst)
    f = follower(log, "--events", os.devnull)
    polls, most_events = 0, 0
    out: list[Output] = []
    while True:
        got = f.poll()
        polls += 1
        most_events = max(most_events, sum(o.kind == "event" for o in got))
        out += [o for o in got if o.kind == "incident"]
        if not f.behind:
            break
    out += f.pipeline.flush()
    assert polls >= len(burst) // _READ_BYTES
    assert most_events <= _READ_BYTES // len(line(0)) + 1  # one poll's events: one share of the file
    assert len(incidents(out)) == 600
    assert f.pipeline.counters.lines_in == 60_000


def test_a_line_past_the_cap_is_dead_lettered_and_not_held(tmp_path: Path) -> None:
    # follow had no line cap: a 200 MB line reached 369 MB
    log = tmp_path / "access.log"
    cap = 4096
    log.write_bytes(line(0) + b"A" * 40_000)
    f = follower(log, max_line_bytes=cap)
    out = f.poll()
    t = f.files[str(log)]
    held = t.buffer._held  # the unfinished line's bytes kept: at most the cap
    assert held <= cap
    with open(log, "ab") as fh:
        fh.write(b"B" * 40_000 + b"\n" + line(1))
    out += f.poll() + f.pipeline.flush()
    dead = [o.value for o in out if o.kind == "dead_letter"]
    assert len(dead) == 1 and "80000 bytes" in dead[0].reason and dead[0].source.offset == 2
    assert incidents(out) == ["/r0", "/r1"]
    c = f.pipeline.counters
    assert c.lines_in == 3 == c.lines_parsed + c.lines_dead_lettered
    assert t.line_start == os.path.getsize(log)  # byte offsets stay exact for the state file


def test_a_rotated_file_s_unfinished_last_line_is_not_lost(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(line(0) + line(1).rstrip(b"\n"))
    f = follower(log)
    out = f.poll()
    os.rename(log, tmp_path / "access.log.1")
    log.write_bytes(line(2))
    out += f.poll() + f.pipeline.flush()
    assert incidents(out) == ["/r0", "/r1", "/r2"]
