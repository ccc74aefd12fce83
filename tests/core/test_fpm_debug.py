"""PHP-FPM at ``log_level = debug`` (issue #19): slowlog entries with microsecond timestamps, and slowlog lines
shipped line by line into the php-fpm stream (a tailing shipper with no multiline config)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from grammars import slowlog
from grammars.result import ParseError
from processor.core.events import PHP_FPM, PHP_FPM_SLOWLOG, DeadLetter, Record, SourceRef
from processor.pipeline import Pipeline, PipelineSettings
from tests.behaviour.realworld.harness import replay

CORPUS = Path(__file__).parents[1] / "corpus"

# php8.2-fpm at log_level = debug, in the shape issue #19 quotes from the lab (pool "docs"); the
# slowlog header is the one the issue quotes, the other lines follow php-src's debug prefix
DEBUG_SLOWLOG = [
    "[24-Nov-2026 05:41:58.635957]  [pool docs] pid 15659",
    "script_filename = /tmp/badgateway-lab/www/docs/sleep.php",
    "[0x00007fdc51c130a0] usleep() /tmp/badgateway-lab/www/docs/sleep.php:4",
]
DEBUG_FPM = [
    "[24-Nov-2026 05:41:58.635821] WARNING: pid 15649, fpm_request_check_timed_out(), line 272: [pool docs] child "
    "15659, script '/tmp/badgateway-lab/www/docs/sleep.php' (request: \"GET /docs/sleep.php\") executing too slow "
    "(1.003456 sec), logging",
    "[24-Nov-2026 05:41:58.636011] NOTICE: pid 15649, fpm_children_bury(), line 248: child 15659 stopped for tracing",
]


def test_a_debug_slowlog_entry_parses_with_its_microseconds() -> None:
    fields = slowlog.parse_slowlog_entry("\n".join(DEBUG_SLOWLOG))
    assert not isinstance(fields, ParseError), fields
    assert fields["time"] == datetime(2026, 11, 24, 5, 41, 58, 635957)
    assert (fields["pool"], fields["pid"], len(fields["frames"])) == ("docs", 15659, 1)


@pytest.mark.parametrize("log_type", [PHP_FPM_SLOWLOG, PHP_FPM, None], ids=["slowlog", "in the fpm stream", "detected"])
def test_debug_slowlog_lines_one_record_each(log_type: str | None) -> None:
    pipeline = Pipeline(PipelineSettings())
    lines = [DEBUG_FPM[0], *DEBUG_SLOWLOG, "", DEBUG_FPM[1]] if log_type != PHP_FPM_SLOWLOG else ["", *DEBUG_SLOWLOG]
    dead = []
    for i, text in enumerate(lines):
        dead += [
            o.value
            for o in pipeline.feed(Record(text, SourceRef("php", i + 1, 0), log_type, "web-1"))
            if o.kind == "dead_letter"
        ]
    dead += [o.value for o in pipeline.flush() if o.kind == "dead_letter"]
    assert [d.reason for d in dead if isinstance(d, DeadLetter)] == []
    c = pipeline.counters
    assert c.lines_in == c.lines_parsed == len(lines)
    assert c.events_by_type.get(PHP_FPM_SLOWLOG) == 1


def test_a_debug_fpm_file_with_slowlog_lines_through_replay(tmp_path: Path) -> None:
    _, dead = replay(
        tmp_path,
        {
            "php-fpm.log": "\n".join([DEBUG_FPM[0], *DEBUG_SLOWLOG, "", DEBUG_FPM[1]]) + "\n",
            "slow.log": "\n" + "\n".join(DEBUG_SLOWLOG) + "\n",
        },
    )
    assert dead == []


def test_a_compose_stream_of_fpm_debug_and_pool_access_lines(tmp_path: Path) -> None:
    # docker-library/php#655: `docker-compose logs php` — the master log at debug and the pool access log
    text = (CORPUS / "php-fpm" / "issue-docker-library-php-655.compose-prefixed.log").read_text()
    _, dead = replay(tmp_path, {"php.log": text})
    assert dead == []
