"""The lab's json-debug variant (issue #19): a JSON access log (``escape=json``) and PHP-FPM at ``log_level =
debug``, both written by real nginx and php-fpm. Every line is parsed (lines read = parsed + dead-lettered,
dead-lettered = 0) and every failed request gets its ground-truth cause and pool.

Runs on the recording in ``examples/lab-json`` (always) and on a fresh run of the variant (``-m lab``).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from grammars import lowering
from grammars.access import compile_log_format, parse_json_access
from grammars.result import ParseError
from lab.configs import LAB_JSON_LOG_FORMAT
from processor.cli import main
from tests.lab import test_lab_run as classic
from tests.lab.test_lab_diagnosis import by_id, check_accuracy, check_protocol_causes, truth

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "examples" / "lab-json"
EQUATION = re.compile(r"lines read ([\d,]+) = parsed ([\d,]+) \+ dead-lettered ([\d,]+)")
# php-fpm writes a worker's stderr (catch_workers_output) as "pid N, (null)(), line 0: [pool www] child N said …"
FPM_DEBUG = re.compile(
    r"^\[\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\] [A-Z]+: pid \d+, (?:\w+|\(null\))\(\), line \d+: "
)
SLOWLOG_HEAD = re.compile(r"^\[\d{2}-\w{3}-\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\]  \[pool \w+\] pid \d+$")


def physical_lines(logs: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in logs.rglob("*.log"))


def replay_counted(
    outdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *, configs: bool = True
) -> tuple[list[dict[str, Any]], tuple[int, int, int]]:
    """Replay ``outdir/logs``; (incidents, (lines read, parsed, dead-lettered) from the closing summary)."""
    out, dead = tmp_path / "incidents.jsonl", tmp_path / "dead.jsonl"
    argv = ["replay", "--no-progress", "-o", str(out), "--dead-letter", str(dead)]
    if configs:
        argv += ["--nginx-conf", str(outdir / "conf" / "nginx.conf")]
        for conf in sorted((outdir / "conf").glob("php-fpm*.conf")):
            argv += ["--fpm-conf", str(conf)]
    capsys.readouterr()
    assert main([*argv, str(outdir / "logs")]) == 0
    printed = capsys.readouterr()
    m = EQUATION.search(printed.err + printed.out)
    assert m, printed.err[-2000:]
    counts = tuple(int(g.replace(",", "")) for g in m.groups())
    assert dead.read_text() == "", dead.read_text()[:2000]
    return [json.loads(line) for line in out.read_text().splitlines()], counts  # type: ignore[return-value]


def check_every_line_parsed(outdir: Path, counts: tuple[int, int, int]) -> None:
    read, parsed, dead = counts
    assert (read, dead) == (physical_lines(outdir / "logs"), 0)
    assert read == parsed + dead


def check_what_the_variant_wrote(outdir: Path) -> None:
    """The recording is the variant: JSON access lines with an ISO time, debug-level FPM lines, microsecond
    slowlog entries (so the zero dead letters above are about those shapes)."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["variant"] == "json-debug"
    masters = [log for log in manifest["logs"] if log["type"] == "php_fpm"]
    assert len(masters) == 3 and {log["log_level"] for log in masters} == {"debug"}
    [lab_log] = [log for log in manifest["logs"] if log.get("server") == "lab.test"]
    assert (lab_log["path"], lab_log["escape"]) == ("logs/access_json.log", "json")
    assert "escape=json" in (outdir / "conf" / "nginx.conf").read_text()

    text = (outdir / "logs" / "access_json.log").read_bytes().decode("utf-8", "surrogateescape")
    rows = [json.loads(line) for line in text.splitlines()]  # the standard library keeps a raw byte (surrogate)
    assert len(rows) >= 80 and all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", r["time"]) for r in rows
    )
    assert {r["status"] for r in rows} >= {200, 404, 499, 500, 502, 504}
    assert any(r["remote_user"] == "" for r in rows)  # escape=json writes nothing for an empty variable
    assert sum(r["http_user_agent"] == ODD_UA for r in rows) == 2  # the odd headers' 200 and 502

    for name in ("php-fpm.log", "php-fpm-legacy.log", "php-fpm-reports.log"):
        lines = [line for line in (outdir / "logs" / name).read_text().splitlines() if line]
        assert lines and all(FPM_DEBUG.match(line) for line in lines), name
    fpm = (outdir / "logs" / "php-fpm.log").read_text()
    assert " DEBUG: " in fpm and "execution timed out" in fpm and "exited on signal 11 (SIGSEGV)" in fpm
    assert "(null)(), line 0: [pool www] child" in fpm and "said into stderr" in fpm
    heads = [line for line in (outdir / "logs" / "slow.log").read_text().splitlines() if "[pool " in line]
    assert heads and all(SLOWLOG_HEAD.match(line) for line in heads)
    # the variant's own scenario: two requests in flight when master legacy stops; their workers' exits at DEBUG
    stopped = [r for r in truth(outdir).values() if r["cause"] == "upstream_reset"]
    assert len(stopped) == 2 and {r["pool"] for r in stopped} == {"legacy"}
    assert re.search(
        r"\] DEBUG: pid \d+, fpm_children_bury\(\), line \d+: \[pool legacy\] child \d+ exited on "
        r"signal 15 \(SIGTERM\)",
        (outdir / "logs" / "php-fpm-legacy.log").read_text(),
    )


def check_stopped_is_no_crash(incidents: list[dict[str, Any]]) -> None:
    """The DEBUG exit of a worker its master's stop ended is evidence of that stop, never of a crash."""
    stopped = [i for i in incidents if i["badgateway"]["cause"] == "upstream_reset"]
    assert len(stopped) == 2
    for inc in stopped:
        [line] = inc["evidence"]["php_fpm"]
        assert (line["fields"]["level"], line["fields"]["signal"], line["fields"]["pool"]) == ("DEBUG", 15, "legacy")
        assert "not a crash" in inc["badgateway"]["remediation"] and "stop or reload" in inc["badgateway"]["note"]
    assert not any(
        "SIGTERM" in i["badgateway"]["remediation"] for i in incidents if i["badgateway"]["cause"] == "child_crash"
    )


# nginx's escape=json escapes `"`, `\` and control bytes but writes a byte that is not UTF-8 as it came: the
# json-debug lab's request with `caf\xe9` in its User-Agent and Referer (http.client sends the byte 0xE9), as
# examples/lab-json/logs/access_json.log has it
ODD_LINE = (
    '{"time":"2026-12-07T11:16:56+00:00","remote_addr":"127.0.0.1","remote_user":"","request":"GET '
    '/robots.txt?id=lab-0021 HTTP/1.1","status":200,"body_bytes_sent":24,"request_time":0.000,'
    '"http_referer":"https://example.com/?q=\\"x\\"&r=caf\udce9","http_user_agent":"Mozilla/5.0 \\"quoted\\" '
    '\\\\back\\\\slash\\ttab caf\udce9","host":"lab.test","upstream_addr":"","upstream_status":"",'
    '"upstream_response_time":"","connection":39}'
)
ODD_UA = 'Mozilla/5.0 "quoted" \\back\\slash\ttab caf\udce9'  # read with surrogateescape, as replay reads


@pytest.mark.parametrize("reader", ["log_format", "log_format, pyparsing", "no config"])
def test_a_raw_non_utf8_byte_in_an_escape_json_line(reader: str) -> None:
    recorded = (RECORDED / "logs" / "access_json.log").read_bytes().decode("utf-8", "surrogateescape")
    assert ODD_LINE in recorded.splitlines()
    fmt = compile_log_format(LAB_JSON_LOG_FORMAT, escape="json")
    fields = {
        "log_format": fmt.parse,
        "log_format, pyparsing": partial(lowering.parse_with, fmt.grammar, None),
        "no config": parse_json_access,
    }[reader](ODD_LINE)
    assert not isinstance(fields, ParseError), fields
    assert (fields["http_user_agent"], fields["http_referer"]) == (ODD_UA, 'https://example.com/?q="x"&r=caf\udce9')
    assert (fields["status"], fields["uri"]) == (200, "/robots.txt?id=lab-0021")


def test_recorded_json_debug_lab_is_json_and_debug() -> None:
    check_what_the_variant_wrote(RECORDED)


def test_recorded_json_debug_lab_every_line_parsed_every_failure_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    incidents, counts = replay_counted(RECORDED, tmp_path, capsys)
    check_every_line_parsed(RECORDED, counts)
    with capsys.disabled():
        check_accuracy(RECORDED, incidents)
    check_stopped_is_no_crash(incidents)


def test_recorded_json_debug_lab_without_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # no nginx.conf: the JSON lines are told and parsed from their keys; the causes the logs alone decide stay
    incidents, counts = replay_counted(RECORDED, tmp_path, capsys, configs=False)
    check_every_line_parsed(RECORDED, counts)
    causes = {rid: [i["badgateway"]["cause"] for i in incs] for rid, incs in by_id(incidents).items()}
    for rid, row in truth(RECORDED).items():
        if row["cause"] == "socket_mismatch":
            assert causes[rid] == ["socket_missing"], rid
        if row["cause"] in (
            "fpm_timeout",
            "child_crash",
            "too_big_header",
            "socket_permission",
            "tcp_refused",
            "nginx_timeout",
            "no_live_upstreams",
        ):
            assert causes[rid] == [row["cause"]], rid


@pytest.mark.lab
@pytest.mark.timeout(400)
def test_live_json_debug_lab(
    lab_json_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, proc = lab_json_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    classic.test_no_process_left_behind(out)
    check_what_the_variant_wrote(out)
    incidents, counts = replay_counted(out, tmp_path, capsys)
    check_every_line_parsed(out, counts)
    with capsys.disabled():
        check_accuracy(out, incidents)
    check_protocol_causes(out, incidents)
    check_stopped_is_no_crash(incidents)
