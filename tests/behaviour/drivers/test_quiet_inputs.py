"""Quiet inputs under a wall clock the test controls (#18): every stream read to its end and quiet gives its
incidents within ``idle_timeout`` of the last line, one per request, as ``replay`` gives them.

The last NGINX error entry of a stream stays in the multi-line assembler until the next line: when its stream
goes idle it is released (``Pipeline.tick``), so its failure is not first closed as ``unknown`` and then
followed, at shutdown, by a late second incident with another ``event.id``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from processor.cli import main
from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Record, SourceRef
from processor.pipeline import Pipeline, PipelineSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from gen_outage import FILES, STREAMS, generate, streams  # noqa: E402

TYPES = {"access": NGINX_ACCESS, "error": NGINX_ERROR, "fpm": PHP_FPM}
IDLE_MS = 30_000


def key(incident: dict[str, Any]) -> tuple[str, str, str | None]:
    return incident["event"]["id"], incident["badgateway"]["cause"], incident["php_fpm"]["pool"]


def replayed(tmp_path: Path, n: int, seed: int) -> list[dict[str, Any]]:
    generate(str(tmp_path / "logs"), n, share=0.05, seed=seed)
    out = tmp_path / "replay.jsonl"
    assert (
        main(["replay", "-q", "--no-progress", "-o", str(out), *[str(tmp_path / "logs" / FILES[s]) for s in STREAMS]])
        == 0
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def fed_live(n: int, seed: int, *, tail_lines: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The three logs fed as a tailer reads them (each file to its end per poll, by name under ``tmp``), the
    wall clock one second a poll; then ``tail_lines`` more polls of nothing. (incidents by then, after flush)"""
    lines, _, _ = streams(n, share=0.05, seed=seed)
    pipeline = Pipeline(PipelineSettings())
    now_ms = 1_795_600_000_000  # (after the logs: a record ahead of the wall clock never moves a watermark)
    pipeline.tick(now_ms)
    got: list[dict[str, Any]] = []
    for s in STREAMS:  # the files are there when the poll starts: not read yet
        pipeline.input_behind(FILES[s], True)
    for s in STREAMS:  # one poll: every file read to its end, one after the other
        for i, text in enumerate(lines[s], 1):
            got += [
                o.value
                for o in pipeline.feed(Record(text, SourceRef(FILES[s], i), TYPES[s], ""))
                if o.kind == "incident"
            ]
        pipeline.input_behind(FILES[s], False)
    for _ in range(tail_lines):  # the logs go quiet: a poll a second, nothing read
        now_ms += 1_000
        got += [o.value for o in pipeline.tick(now_ms) if o.kind == "incident"]
    after = [o.value for o in pipeline.flush() if o.kind == "incident"]
    return got, after


@pytest.mark.parametrize("seed", [7, 11])
def test_quiet_logs_give_replays_incidents_within_the_idle_timeout(tmp_path: Path, seed: int) -> None:
    expected = replayed(tmp_path, 2000, seed)
    got, after = fed_live(2000, seed, tail_lines=IDLE_MS // 1000 + 1)
    assert after == []  # nothing waited for the shutdown
    assert sorted(map(key, got)) == sorted(map(key, expected))
    assert len({i["event"]["id"] for i in got}) == len(got) == len(expected)
    assert not any(i["event"]["late"] for i in got)


def test_the_last_error_entry_of_a_stream_is_released_when_it_goes_idle() -> None:
    # one failure, the error log's last entry: before #18 `unknown` at once, then a late `fpm_timeout`-like
    # second incident with another event.id at flush
    access = '127.0.0.1 - - [24/Nov/2026:07:41:54 +0000] "GET /slow.php HTTP/1.1" 502 150 "-" "curl/8"'
    error = (
        "2026/11/24 07:41:54 [error] 14600#14600: *7 recv() failed (104: Connection reset by peer) while "
        'reading response header from upstream, client: 127.0.0.1, server: lab, request: "GET /slow.php '
        'HTTP/1.1", upstream: "fastcgi://unix:/run/php/slow.sock:", host: "localhost"'
    )
    pipeline = Pipeline(PipelineSettings())
    pipeline.tick(1_795_600_000_000)
    out = pipeline.feed(Record(error, SourceRef("error.log", 1), NGINX_ERROR, "web-1"))
    out += pipeline.feed(Record(access, SourceRef("access.log", 1), NGINX_ACCESS, "web-1"))
    for now_ms in range(1_795_600_001_000, 1_795_600_000_000 + IDLE_MS + 2_000, 1_000):
        out += pipeline.tick(now_ms)
    incidents = [o.value for o in out if o.kind == "incident"]
    assert [i["badgateway"]["cause"] for i in incidents] == ["upstream_reset"]
    assert incidents[0]["evidence"]["nginx_error"] is not None and not incidents[0]["event"]["late"]
    assert [o for o in pipeline.flush() if o.kind == "incident"] == []
