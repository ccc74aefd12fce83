"""Which fastcgi_pass a failed request went through: the remediation quotes the timeouts and buffers in force there.

Two locations (or two server blocks) often pass to one pool with other settings: the lab's ``location ~ \\.php$``
(the default 4k buffer) and ``location ^~ /big/`` (``fastcgi_buffer_size 1k``) both reach pool www. The remediation
used to quote the first fastcgi_pass naming the upstream: 4096 for the 8 KB header that overflowed the 1k buffer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from processor.diagnosis.topology import Route, location_for

REPO = Path(__file__).resolve().parents[2]


def _route(location: str) -> Route:
    return Route("unix:/run/php/www.sock", "unix:/run/php/www.sock", f"nginx.conf:{location}", location)


ROUTES = [
    _route("~ \\.php$"),
    _route("/slow/"),
    _route("^~ /big/"),
    _route("= /health.php"),
    _route("~* ^/API/"),
    _route("/"),
]


@pytest.mark.parametrize(
    ("path", "chosen"),
    [
        ("/health.php", "= /health.php"),  # exact first
        ("/big/bigheader.php", "^~ /big/"),  # the longest prefix is ^~: no regex is tried
        ("/slow/report.php", "~ \\.php$"),  # a plain prefix loses to a matching regex (an NGINX classic)
        ("/slow/report.csv", "/slow/"),  # … and wins when none matches
        ("/api/v1/x", "~* ^/API/"),  # ~* ignores case
        ("/index.php", "~ \\.php$"),
        ("/robots.txt", "/"),
    ],
)
def test_the_location_nginx_would_choose(path: str, chosen: str) -> None:
    route = location_for(ROUTES, path)
    assert route is not None and route.location == chosen


def test_a_named_location_or_nothing_matching_gives_none() -> None:
    assert location_for([_route("@php"), _route("/app/")], "/index.php") is None


@pytest.fixture(scope="module")
def lab_incidents() -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "replay",
            "-q",
            "--nginx-conf",
            "examples/lab/conf/nginx.conf",
            "--fpm-conf",
            "examples/lab/conf",
            "examples/lab/logs",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_the_lab_recording_quotes_the_big_locations_1k_buffer(lab_incidents: list[dict[str, Any]]) -> None:
    texts = {
        (i["url"]["original"], i["evidence"]["nginx_error"]["fields"]["server"]): i["badgateway"]["remediation"]
        for i in lab_incidents
        if i["badgateway"]["cause"] == "too_big_header"
    }
    conf = (REPO / "examples/lab/conf/nginx.conf").read_text().splitlines()
    assert len(texts) == 3
    for (url, server), text in texts.items():
        assert url.startswith("/big/")
        assert "(fastcgi_buffer_size 1024 at examples/lab/conf/nginx.conf:" in text, text
        line = int(text.split("nginx.conf:")[1].split(")")[0])
        assert conf[line - 1].strip() == "fastcgi_buffer_size 1k;"
        # in the server block the request went to (lab.test, or legacy.test for the combined-log requests)
        block = "\n".join(conf[:line])
        assert block.rsplit("server_name ", 1)[1].startswith(server), (url, server)


def test_the_config_check_quoted_is_the_one_about_the_requests_server(lab_incidents: list[dict[str, Any]]) -> None:
    # lab.test and legacy.test each have a /shop/ and a /search/ location that check-config flags: one finding each
    quoted = {
        (i["badgateway"]["cause"], i["evidence"]["nginx_error"]["fields"]["server"], i["badgateway"]["remediation"])
        for i in lab_incidents
        if i["badgateway"]["cause"] in ("socket_mismatch", "tcp_refused")
        and "Config check" in i["badgateway"]["remediation"]
    }
    servers = {server for _, server, _ in quoted}
    assert servers == {"lab.test", "legacy.test"}
    for _, server, text in quoted:
        assert f"Config check: server {server}, location" in text, (server, text)


def test_a_refusal_at_one_server_of_a_group_quotes_the_finding_about_it(lab_incidents: list[dict[str, Any]]) -> None:
    # /billing/ passes to the group billing_backend; NGINX logs the server it tried (127.0.0.1:19011)
    texts = [
        i["badgateway"]["remediation"]
        for i in lab_incidents
        if i["badgateway"]["cause"] == "tcp_refused" and i["nginx"]["upstream"]["address"] == "127.0.0.1:19011"
    ]
    assert texts
    for text in texts:
        assert (
            "Config check: server lab.test, location ^~ /billing/: fastcgi_pass billing_backend (upstream server "
            in (text)
        )
        assert "127.0.0.1:19011): no PHP-FPM pool listens there" in text
        assert "→ 502 (connect() failed (111: Connection refused))" in text
