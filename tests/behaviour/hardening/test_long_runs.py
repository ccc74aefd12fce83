"""Hours of real lines through the join: every kind of line the lab recorded, again and again, shifted in time.

The lab recording (examples/lab/logs: real nginx 1.22 and php8.2-fpm driven into every cause) spans a minute. A
production log spans days, and what the join holds is pruned by event time: a line kind held as evidence and
dropped a minute later (``child N exited with code 0``, #23) stopped every driver, and no test spanned long enough
to see it. Here each round of the recording is shifted by minutes to an hour, on three hosts, the rounds
overlapping within the allowed lateness, with a small state cap so that eviction runs too. Nothing raises,
every output is JSON, and lines in = parsed + dead-lettered.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Record, SourceRef
from processor.diagnosis.episodes import EpisodeSettings
from processor.diagnosis.state import JoinSettings
from processor.io.sinks import serialise
from processor.pipeline import Pipeline, PipelineSettings

LAB = Path(__file__).parents[3] / "examples" / "lab" / "logs"
FILES = {
    "access_combined.log": NGINX_ACCESS,
    "error.log": NGINX_ERROR,
    "php-fpm.log": PHP_FPM,
    "php-fpm-legacy.log": PHP_FPM,
    "php-fpm-reports.log": PHP_FPM,
}
# each log's time stamp, as the lab wrote it: (pattern, strptime/strftime format)
STAMPS = {
    NGINX_ACCESS: (re.compile(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) \+0000\]"), "%d/%b/%Y:%H:%M:%S"),
    NGINX_ERROR: (re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)"), "%Y/%m/%d %H:%M:%S"),
    PHP_FPM: (re.compile(r"^\[(\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d)\]"), "%d-%b-%Y %H:%M:%S"),
}


# PHP-FPM lines the lab run did not provoke, in php-fpm's own words (php-src sapi/fpm/fpm: fpm_children.c
# "child %d exited with code %d / on signal %d (%s) after %ld.%06d seconds from start" and "child %d started",
# fpm_process_ctl.c's max_children and "seems busy" warnings, fpm_stdio.c's "said into stderr", fpm_sockets.c's
# bind error, fpm_signals/fpm_process_ctl's reload): a recycled child (pm.max_requests), a fatal exit, an OOM kill
EXTRA_FPM = [
    "[24-Nov-2026 07:41:50] NOTICE: [pool www] child 14600 exited with code 0 after 120.002150 seconds from start",
    "[24-Nov-2026 07:41:50] NOTICE: [pool www] child 14611 started",
    "[24-Nov-2026 07:41:51] WARNING: [pool www] child 14601 exited with code 255 after 0.512024 seconds from start",
    "[24-Nov-2026 07:41:51] WARNING: [pool www] child 14602 exited on signal 9 (SIGKILL) after 30.100411 seconds from start",
    "[24-Nov-2026 07:41:52] WARNING: [pool www] seems busy (you may need to increase pm.start_servers, or "
    "pm.min/max_spare_servers), spawning 8 children, there are 0 idle, and 13 total children",
    "[24-Nov-2026 07:41:52] WARNING: [pool www] server reached pm.max_children setting (5), consider raising it",
    '[24-Nov-2026 07:41:53] WARNING: [pool www] child 14612 said into stderr: "PHP Fatal error:  Allowed memory '
    'size of 134217728 bytes exhausted (tried to allocate 20480 bytes) in /srv/www/index.php on line 3"',
    "[24-Nov-2026 07:41:54] NOTICE: Reloading in progress ...",
    '[24-Nov-2026 07:41:54] NOTICE: reloading: execvp("/usr/sbin/php-fpm8.2", {"/usr/sbin/php-fpm8.2", '
    '"--nodaemonize", "--fpm-config", "/etc/php/8.2/fpm/php-fpm.conf"})',
    "[24-Nov-2026 07:41:54] ERROR: unable to bind listening socket for address '/run/php/php8.2-fpm.sock': "
    "Address already in use (98)",
]


def _shifted(line: str, log_type: str, by: timedelta) -> str:
    pattern, fmt = STAMPS[log_type]

    def move(m: re.Match[str]) -> str:
        when = datetime.strptime(m.group(1), fmt).replace(tzinfo=UTC) + by
        return m.group(0).replace(m.group(1), when.strftime(fmt))

    return pattern.sub(move, line, count=1)


def _rounds(rnd: random.Random, rounds: int) -> list[tuple[str, str, str, str]]:
    """(host, file, log type, line) of every round (each on one of three hosts), in the order a shipper would send them: each file in order, the
    files interleaved at random, in chunks, keeping pace with each other."""
    recorded = {name: (LAB / name).read_text(encoding="utf-8").splitlines() for name in FILES}
    recorded["php-fpm.log"] += EXTRA_FPM
    by_file: dict[str, list[tuple[str, str, str, str]]] = {name: [] for name in FILES}
    at = timedelta(0)
    for r in range(rounds):
        at += timedelta(seconds=rnd.choice((30, 61, 75, 300, 3600)))
        host = ("web-1", "web-2", "web-3")[r % 3]
        for name, lines in recorded.items():
            log_type = FILES[name]
            by_file[name] += [(host, name, log_type, _shifted(line, log_type, at)) for line in lines if line.strip()]
    order: list[tuple[str, str, str, str]] = []
    cursors = dict.fromkeys(FILES, 0)
    while any(cursors[n] < len(by_file[n]) for n in FILES):
        # files advance together (a shipper tails them all), give or take a chunk of lines
        left = {n: len(by_file[n]) - cursors[n] for n in FILES if cursors[n] < len(by_file[n])}
        name = rnd.choices(list(left), weights=list(left.values()))[0]
        take = rnd.randint(1, 20)
        order += by_file[name][cursors[name] : cursors[name] + take]
        cursors[name] += take
    return order


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_state", [40, 1_000_000])
def test_hours_of_the_lab_recording_never_crash(seed: int, max_state: int) -> None:
    rnd = random.Random(seed)
    join = JoinSettings(max_state=max_state)
    episodes = EpisodeSettings(retain_ms=join.release_ms + join.saturation_lookback_ms + join.allowed_lateness_ms)
    pipeline = Pipeline(PipelineSettings(join=join, emit_events=seed % 2 == 1, episodes=episodes))
    lines = _rounds(rnd, 30)
    outputs = []
    for i, (host, name, log_type, text) in enumerate(lines):
        outputs += pipeline.episode_outputs(pipeline.feed(Record(text, SourceRef(name, i), log_type, host)))
    outputs += pipeline.episode_outputs(pipeline.flush(), final=True)
    for out in outputs:
        orjson.loads(serialise(out))
    counters = pipeline.counters
    assert counters.lines_in == len(lines) == counters.lines_parsed + counters.lines_dead_lettered
    incidents = [o for o in outputs if o.kind == "incident"]
    assert incidents  # the recording's failures, round after round
    assert counters.incidents == len(incidents)
    assert any(o.kind == "episode" for o in outputs)
