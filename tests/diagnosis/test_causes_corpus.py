"""Each cause from real NGINX / PHP-FPM lines (tests/corpus, see the PROVENANCE.md files there).

Lines are used verbatim; where a case joins lines from two different sources, only the timestamp of the
FPM line is moved onto the NGINX line's clock (``at``), because the two were never logged on one machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from processor.core.events import Record, SourceRef
from processor.diagnosis.topology import PoolInfo, Topology
from processor.pipeline import Pipeline, PipelineSettings

CORPUS = Path(__file__).parent.parent / "corpus"


def line(path: str, contains: str) -> str:
    for text in (CORPUS / path).read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if contains in text:
            return text
    raise AssertionError(f"no line with {contains!r} in {path}")


def fpm_at(text: str, stamp: str) -> str:
    """Move an FPM line's ``[DD-Mon-YYYY HH:MM:SS]`` onto another clock."""
    return re.sub(r"^\[[^\]]+\]", f"[{stamp}]", text)


def diagnose(lines: list[tuple[str, str]], topology: Topology | None = None) -> list[dict[str, Any]]:
    pipeline = Pipeline(PipelineSettings(), topology)
    out = []
    for i, (log_type, text) in enumerate(lines):
        out += pipeline.feed(Record(text, SourceRef(log_type, i + 1), log_type, "web-1"))
    out += pipeline.flush()
    c = pipeline.counters
    assert c.lines_in == c.lines_parsed + c.lines_dead_lettered == len(lines) and c.lines_dead_lettered == 0
    return [o.value for o in out if o.kind == "incident"]


E = "nginx_error"
CASES: list[tuple[str, list[tuple[str, str]], str, int, str | None, str | None]] = [
    (
        "errno 13 on a unix socket (dokku#912)",
        [(E, line("nginx-error/issue-dokku-dokku-912.log", "(13: Permission denied)"))],
        "socket_permission",
        502,
        "heroku.fcgi.5000",
        "socket_name",
    ),
    (
        "errno 2 without configs (whatwedo#38)",
        [(E, line("nginx-error/issue-whatwedo-docker-base-images-38.log", "(2: No such file"))],
        "socket_missing",
        502,
        None,
        None,
    ),
    # 127.0.0.1:9000 with no configs: the distributions' default pool (a guess, marked as such)
    (
        "recv() 104, no FPM log (cakephp#6748)",
        [(E, line("nginx-error/issue-cakephp-cakephp-6748.log", "recv() failed (104"))],
        "upstream_reset",
        502,
        "www",
        "distro_default",
    ),
    (
        "recv() 104 + execution timed out (cakephp#6748 + zhuhangyu's FPM log)",
        [
            (E, line("nginx-error/issue-cakephp-cakephp-6748.log", "recv() failed (104")),
            (
                "php_fpm",
                fpm_at(
                    line("php-fpm/blog-zhuhangyu-2015-08-29-fpm-error.log", "execution timed out"),
                    "06-Jun-2015 14:34:20",
                ),
            ),
        ],
        "fpm_timeout",
        502,
        "www",
        "fpm_log",
    ),
    (
        "prematurely closed + SIGSEGV (opencart#5029 + TSN-Ranksystem#572)",
        [
            (E, line("nginx-error/issue-opencart-opencart-5029.log", "prematurely closed")),
            (
                "php_fpm",
                fpm_at(
                    line("php-fpm/issue-Newcomer1989-TSN-Ranksystem-572.log", "exited on signal 11"),
                    "17-Nov-2016 01:56:09",
                ),
            ),
        ],
        "child_crash",
        502,
        "rank.mightful-noobs.de",
        "fpm_log",
    ),
    (
        "too big header (idno#2742)",
        [(E, line("nginx-error/issue-idno-idno-2742.log", "too big header"))],
        "too_big_header",
        502,
        "www",
        "distro_default",
    ),  # Ubuntu's php7.2-fpm.sock is pool [www]
    (
        "read timeout is NGINX's own (nextcloud_ynh#605)",
        [(E, line("nginx-error/issue-YunoHost-Apps-nextcloud_ynh-605.log", "while reading response header"))],
        "nginx_timeout",
        504,
        "php8.1-fpm-nextcloud",
        "socket_name",
    ),
    (
        "no live upstreams (dockerize-vps#3)",
        [(E, line("nginx-error/issue-rokerkony-dockerize-vps-3.log", "no live upstreams"))],
        "no_live_upstreams",
        502,
        None,
        None,
    ),
    (
        "TCP connect refused (engintron#1198)",
        [(E, line("nginx-error/issue-engintron-engintron-1198.log", "connect() failed (111"))],
        "tcp_refused",
        502,
        None,
        None,
    ),
]


@pytest.mark.parametrize("name,lines,cause,status,pool,pool_source", CASES, ids=[c[0] for c in CASES])
def test_cause_from_real_lines(
    name: str, lines: list[tuple[str, str]], cause: str, status: int, pool: str | None, pool_source: str | None
) -> None:
    [incident] = diagnose(lines)
    assert incident["badgateway"]["cause"] == cause
    assert incident["http"]["response"]["status_code"] == status
    assert incident["badgateway"]["status_inferred"] is True  # no access line: status from the error kind
    assert (incident["php_fpm"]["pool"], incident["php_fpm"]["pool_source"]) == (pool, pool_source)


def test_configs_turn_socket_missing_into_mismatch_or_down() -> None:
    err = line("nginx-error/issue-whatwedo-docker-base-images-38.log", "(2: No such file")
    elsewhere = PoolInfo("www", "/run/php/php-fpm.sock", "unix:/run/php/php-fpm.sock", "www.conf:36", "php-fpm.conf")
    there = PoolInfo("www", "/var/run/php-fpm.sock", "unix:/var/run/php-fpm.sock", "www.conf:36", "php-fpm.conf")
    [mismatch] = diagnose([(E, err)], Topology(pools=(elsewhere,)))
    assert mismatch["badgateway"]["cause"] == "socket_mismatch"
    assert "/run/php/php-fpm.sock (www.conf:36)" in mismatch["badgateway"]["remediation"]
    [down] = diagnose([(E, err)], Topology(pools=(there,)))
    assert (down["badgateway"]["cause"], down["php_fpm"]["pool"], down["php_fpm"]["pool_source"]) == (
        "fpm_down",
        "www",
        "config",
    )


def test_access_and_error_join_into_one_incident() -> None:
    # dokku#912 pasted both lines of the same request
    err = line("nginx-error/issue-dokku-dokku-912.log", "(13: Permission denied)")
    access = '172.17.42.1 - - [21/Jan/2015:11:49:39 +0000] "GET / HTTP/1.1" 502 172 "-" "curl/7.35.0"'
    [incident] = diagnose([(E, err), ("nginx_access", access)])
    assert incident["badgateway"]["status_inferred"] is False
    assert incident["evidence"]["access"]["fields"]["status"] == 502
    assert incident["evidence"]["nginx_error"]["fields"]["errno"] == 13


def test_php_fatal_500_is_not_an_incident() -> None:
    fatal = line("nginx-error/issue-aschmelyun-docker-compose-laravel-17.log", "FastCGI sent in stderr")
    assert diagnose([(E, fatal)]) == []
