"""NGINX error-log grammar: tables of real and hand-made lines, hostile input, the whole corpus,
and the fields other parsers (Elastic, Datadog, CrowdSec, fail2ban) expect from the same lines.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from grammars.error import CUT_BYTES, is_entry_start, parse_error_entry, split_request
from grammars.prefix import strip_prefix
from grammars.result import Fields, ParseError

CORPUS = Path(__file__).parents[1] / "corpus" / "nginx-error"

CONNECT_UNIX = (
    "2014/10/21 16:41:40 [crit] 23104#0: *7 connect() to unix:/var/run/o1.fpm.socket failed "
    "(2: No such file or directory) while connecting to upstream, client: 54.248.250.232, "
    'server: www.parrish-cpa.com, request: "GET / HTTP/1.0", upstream: "fastcgi://unix:/var/run/o1.fpm.socket:", '
    'host: "www.parrish-cpa.com"'
)

# (description, line, expected subset of the fields)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "connect() to a unix socket, ENOENT",
        CONNECT_UNIX,
        {
            "time": datetime(2014, 10, 21, 16, 41, 40),
            "level": "crit",
            "pid": 23104,
            "tid": 0,
            "cid": 7,
            "syscall": "connect()",
            "errno": 2,
            "strerror": "No such file or directory",
            "action": "connecting to upstream",
            "connect_target": "unix:/var/run/o1.fpm.socket",
            "client": "54.248.250.232",
            "server": "www.parrish-cpa.com",
            "request": "GET / HTTP/1.0",
            "method": "GET",
            "uri": "/",
            "protocol": "HTTP/1.0",
            "subrequest": None,
            "upstream": "fastcgi://unix:/var/run/o1.fpm.socket:",
            "host": "www.parrish-cpa.com",
            "referrer": None,
            "kind": "connect_failed",
            "truncated": False,
            "message": "connect() to unix:/var/run/o1.fpm.socket failed (2: No such file or directory) "
            "while connecting to upstream",
        },
    ),
    (
        "connect() to TCP, no target in old nginx",
        "2016/11/06 11:03:01 [error] 3860#0: *37 connect() failed (111: Connection refused) while connecting to "
        'upstream, client: 127.0.0.1, server: _, request: "GET /www/muke/index.php HTTP/1.1", upstream: '
        '"fastcgi://127.0.0.1:9000", host: "127.0.0.1"',
        {"kind": "connect_failed", "errno": 111, "connect_target": None, "upstream": "fastcgi://127.0.0.1:9000"},
    ),
    (
        "connect() to an IPv6 target",
        "2020/06/01 08:53:59 [error] 32197#32197: *6552 connect() to [2606:4700:3030::681c:31a]:8080 failed "
        "(101: Network is unreachable) while connecting to upstream, client: 96.75.63.10, server: localhost",
        {"connect_target": "[2606:4700:3030::681c:31a]:8080", "errno": 101, "request": None, "method": None},
    ),
    (
        "recv() reset while reading the header (what a killed FPM child looks like)",
        "2020/11/13 22:18:02 [error] 15276#15276: *1 recv() failed (104: Connection reset by peer) while reading "
        'response header from upstream, client: 10.0.10.123, server: svr, request: "GET / HTTP/1.1", '
        'upstream: "fastcgi://unix:/var/run/php/php7.4-fpm.sock:", host: "10.0.10.1"',
        {"kind": "recv_failed", "syscall": "recv()", "errno": 104, "action": "reading response header from upstream"},
    ),
    (
        "upstream prematurely closed",
        "2016/11/17 01:56:10 [error] 1474#0: *30 upstream prematurely closed connection while reading response "
        'header from upstream, client: 127.0.0.1, server: zerry.codefactory.dev, request: "GET /install/index.php '
        'HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "zerry.codefactory.dev", referrer: '
        '"http://zerry.codefactory.dev/install/index.php"',
        {
            "kind": "premature_close",
            "syscall": None,
            "errno": None,
            "referrer": "http://zerry.codefactory.dev/install/index.php",
        },
    ),
    (
        "too big header, no host",
        "2013/08/23 13:58:52 [error] 18860#0: *1 upstream sent too big header while reading response header from "
        'upstream, client: 192.168.50.1, server: local.pencil.dev, request: "GET /wp-admin/admin-ajax.php '
        'HTTP/1.1", upstream: "fastcgi://unix:/var/run/php5-fpm.sock:"',
        {"kind": "too_big_header", "host": None, "upstream": "fastcgi://unix:/var/run/php5-fpm.sock:"},
    ),
    (
        "upstream timed out while reading (504)",
        "2016/07/19 18:14:10 [error] 15148#0: *212 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 180.76.15.139, server: www.mysite.com, request: "GET /ebc/ '
        'HTTP/1.1", upstream: "fastcgi://unix:/var/run/php5-fpm.sock", host: "www.mysite.com"',
        {"kind": "upstream_timed_out", "errno": 110, "strerror": "Connection timed out"},
    ),
    (
        "Windows strerror with parentheses",
        "2020/03/22 19:07:59 [error] 2100#4284: *1 upstream timed out (10060: FormatMessage() error:(15105)) while "
        'connecting to upstream, client: 127.0.0.1, server: localhost, request: "GET / HTTP/1.1", upstream: '
        '"fastcgi://127.0.0.1:9000", host: "localhost"',
        {"errno": 10060, "strerror": "FormatMessage() error:(15105)", "action": "connecting to upstream"},
    ),
    (
        "no live upstreams",
        "2019/09/26 01:32:42 [error] 56#56: *63 no live upstreams while connecting to upstream, client: "
        '113.185.40.45, server: x.tk, request: "GET /favicon.ico HTTP/1.1", upstream: "http://x.tk/favicon.ico", '
        'host: "x.tk"',
        {"kind": "no_live_upstreams"},
    ),
    (
        "FastCGI stderr, one line",
        '2015/06/04 15:15:35 [error] 5#0: *15 FastCGI sent in stderr: "Primary script unknown" while reading '
        'response header from upstream, client: 172.17.42.1, server: symfony.dev, request: "GET /favicon.ico '
        'HTTP/1.1", upstream: "fastcgi://172.17.0.238:9000", host: "symfony.dev"',
        {"kind": "fastcgi_stderr", "action": "reading response header from upstream", "client": "172.17.42.1"},
    ),
    (
        "FastCGI stderr whose PHP text contains ', client: ' (the context is the trailing one)",
        '2026/11/24 05:42:00 [error] 7#7: *9 FastCGI sent in stderr: "PHP message: bad input, client: 6.6.6.6, '
        'server: evil" while reading response header from upstream, client: 10.0.0.1, server: web, request: '
        '"POST /api HTTP/1.1", upstream: "fastcgi://unix:/run/php/www.sock:", host: "web"',
        {
            "client": "10.0.0.1",
            "server": "web",
            "method": "POST",
            "kind": "fastcgi_stderr",
            "message": 'FastCGI sent in stderr: "PHP message: bad input, client: 6.6.6.6, server: evil" while '
            "reading response header from upstream",
        },
    ),
    (
        "FastCGI stderr spanning three physical lines",
        '2019/10/30 23:26:34 [error] 205860#205860: *180289 FastCGI sent in stderr: "PHP message: PHP Warning:  '
        'A in /x.php on line 0\nPHP message: PHP Warning:  B in /x.php on line 0\nPHP message: C" while reading '
        'response header from upstream, client: 1.2.3.4, server: s, request: "GET /x.php HTTP/1.1"',
        {
            "kind": "fastcgi_stderr",
            "client": "1.2.3.4",
            "uri": "/x.php",
            "action": "reading response header from upstream",
        },
    ),
    (
        "limiting requests",
        '2015/10/29 20:01:02 [error] 256554#0: *99927 limiting requests, excess: 1.852 by zone "one", client: '
        '1.2.3.4, server: example.com, request: "POST /index.htm HTTP/1.0", host: "exmaple.com"',
        {"kind": "limiting_requests", "message": 'limiting requests, excess: 1.852 by zone "one"'},
    ),
    (
        "open() failure is kind other but fully parsed",
        '2016/10/25 14:49:34 [error] 54053#0: *1 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such '
        'file or directory), client: 127.0.0.1, server: localhost, request: "GET /favicon.ico HTTP/1.1", host: '
        '"localhost:8080", referrer: "http://localhost:8080/"',
        {"kind": "other", "syscall": "open()", "errno": 2, "referrer": "http://localhost:8080/"},
    ),
    (
        "subrequest",
        "2021/08/27 08:36:52 [error] 10446#10446: *3 connect() failed (111: Connection refused) while connecting "
        'to upstream, client: ::ffff:213.205.200.23, server: s.com, request: "GET /favicon.ico HTTP/2.0", '
        'subrequest: "/favicon.ico", upstream: "https://46.17.94.249:8443/favicon.ico", host: "www.s.com"',
        {"subrequest": "/favicon.ico", "client": "::ffff:213.205.200.23", "protocol": "HTTP/2.0"},
    ),
    (
        "no *cid (master process)",
        "2017/11/04 08:40:13 [emerg] 11#11: bind() to 0.0.0.0:80 failed (98: Address already in use)",
        {"cid": None, "pid": 11, "syscall": "bind()", "errno": 98, "client": None, "kind": "other"},
    ),
    (
        "console stderr",
        "nginx: [emerg] bind() to [::]:443 failed (98: Address already in use)",
        {"time": None, "level": "emerg", "pid": None, "errno": 98},
    ),
    (
        "old console format",
        "[emerg]: bind() to 0.0.0.0:80 failed (98: Address already in use)",
        {"time": None, "level": "emerg", "message": "bind() to 0.0.0.0:80 failed (98: Address already in use)"},
    ),
    (
        "mail proxy context: login, unquoted upstream, 'using starttls'",
        "2022/04/05 13:25:31 [info] 8#8: *24790 client logged in, client: 174.233.1.144 using starttls, server: "
        '0.0.0.0:11587, login: "admin@example.com", upstream: 172.69.69.9:10025',
        {"client": "174.233.1.144 using starttls", "upstream": "172.69.69.9:10025", "truncated": False},
    ),
    (
        "hand-made injection in the user name: the trailing context wins (fail2ban expects 192.0.2.2)",
        '2014/04/03 22:20:40 [error] 30708#0: *3 user "test": password mismatch, client: 127.0.0.1, server: test, '
        'request: "GET / HTTP/1.1", host: "localhost:8443"": was not found in "/etc/nginx/.htpasswd", client: '
        '192.0.2.2, server: , request: "GET / HTTP/1.1", host: "localhost:8443"',
        {"client": "192.0.2.2", "server": "", "host": "localhost:8443"},
    ),
    (
        "request without protocol (HTTP/0.9 style)",
        '2022/07/28 16:37:00 [error] 2#2: *1 limiting requests, excess: 5.459 by zone "z", client: 192.168.1.1, '
        'server: example.com, request: "POST https://example.com/", host: "example.com"',
        {"method": "POST", "uri": "https://example.com/", "protocol": None},
    ),
    (
        "short line cut inside a quoted value",
        "2026/11/24 05:42:00 [error] 7#7: *9 upstream timed out (110: Connection timed out) while reading response "
        'header from upstream, client: 10.0.0.1, server: web, request: "GET /very/long',
        {"request": "GET /very/long", "method": "GET", "uri": "/very/long", "protocol": None, "truncated": True},
    ),
    (
        "short line cut inside a key",
        "2026/11/24 05:42:00 [error] 7#7: *9 no live upstreams while connecting to upstream, client: 10.0.0.1, "
        "server: web, ups",
        {"client": "10.0.0.1", "server": "web", "upstream": None, "truncated": True},
    ),
]

_LONG_URI = "/" + "a" * 3000
_CUT_LINE = (
    (
        "2026/11/24 05:42:00 [error] 7#7: *9 recv() failed (104: Connection reset by peer) while reading response "
        f'header from upstream, client: 10.0.0.1, server: web, request: "GET {_LONG_URI} HTTP/1.1", '
        'upstream: "fastcgi://unix:/run/php/www.sock:", host: "web"'
    )
    .encode()[:CUT_BYTES]
    .decode()
)

CASES.append(
    (
        "2047-byte cut in the request: context cut mid-way, unterminated quote",
        _CUT_LINE,
        {
            "kind": "recv_failed",
            "client": "10.0.0.1",
            "method": "GET",
            "protocol": None,
            "upstream": None,
            "truncated": True,
        },
    )
)


@pytest.mark.parametrize(("description", "line", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parses(description: str, line: str, expected: dict[str, Any]) -> None:
    fields = parse_error_entry(line)
    assert not isinstance(fields, ParseError), f"{description}: {fields}"
    assert {key: fields[key] for key in expected} == expected


def test_every_contract_field_is_present() -> None:
    fields = parse_error_entry(CONNECT_UNIX)
    assert not isinstance(fields, ParseError)
    assert set(fields) == set(
        "time level pid tid cid message syscall errno strerror action connect_target client server request "
        "method uri protocol subrequest upstream host referrer kind truncated".split()
    )


# (description, line, 1-based column where parsing fails)
FAILURES = [
    ("empty line", "", 1),
    ("not a log line", "hello world", 1),
    ("unknown level", "2016/10/25 14:49:34 [fatal] 1#0: boom", 22),
    ("impossible date", "2016/13/45 14:49:34 [error] 1#0: *1 boom", 1),
    ("pid without tid", "2016/10/25 14:49:34 [error] 54053: *1 boom", 34),
]


@pytest.mark.parametrize(("description", "line", "column"), FAILURES, ids=[f[0] for f in FAILURES])
def test_fails_at(description: str, line: str, column: int) -> None:
    result = parse_error_entry(line)
    assert isinstance(result, ParseError), description
    assert result.column == column
    assert result.line == line


HOSTILE = [
    ("1 MB message", "2016/10/25 14:49:34 [error] 1#0: *1 " + "x, " * 350_000),
    ("1 MB of quotes in a context value", '2016/10/25 14:49:34 [error] 1#0: *1 m, client: a, host: "' + '"' * 100_000),
    ("100k commas and client keys", "2016/10/25 14:49:34 [error] 1#0: *1 " + ", client: " * 100_000),
    ("NUL bytes", "2016/10/25 14:49:34 [error] 1#0: *1 a\x00b, client: \x00, server: x"),
    ("invalid UTF-8", b"2016/10/25 14:49:34 [error] 1#0: *1 \xff\xfe, client: \xc3".decode("utf-8", "surrogateescape")),
    ("only quotes", '"' * 100_000),
    ("1 MB without a timestamp", "x" * 1_000_000),
]


@pytest.mark.parametrize(("description", "line"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_lines_never_raise_and_stay_cheap(description: str, line: str) -> None:
    start = time.perf_counter()
    result = parse_error_entry(line)
    assert time.perf_counter() - start < 2.0, description
    assert isinstance(result, (dict, ParseError))
    if isinstance(result, dict) and len(line.encode("utf-8", "surrogateescape")) >= CUT_BYTES:
        assert result["truncated"]


@pytest.mark.parametrize(
    ("line", "starts"),
    [
        ('2019/10/30 23:26:34 [error] 205860#205860: *180289 FastCGI sent in stderr: "PHP message: x', True),
        ("nginx: [emerg] bind() to [::]:80 failed (98: Address already in use)", True),
        ("[emerg]: bind() to 0.0.0.0:80 failed (98: Address already in use)", True),
        ("PHP message: PHP Warning:  Declaration of FEE_Field_Tags::wrap() in /x.php on line 0", False),
        ("#0 /var/www/index.php(12): main()", False),
        ("", False),
    ],
)
def test_is_entry_start(line: str, starts: bool) -> None:
    assert is_entry_start(line) is starts


@pytest.mark.parametrize(
    ("request_line", "parts"),
    [
        ("GET /x?q=1 HTTP/1.1", ("GET", "/x?q=1", "HTTP/1.1")),
        ("CONNECT registry.npmjs.org:443 HTTP/1.1", ("CONNECT", "registry.npmjs.org:443", "HTTP/1.1")),
        ("GET /loki/api/v1/query?...", ("GET", "/loki/api/v1/query?...", None)),
        ("SSH-2.0-Go", (None, None, None)),
        ("-", (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_split_request(request_line: str | None, parts: tuple[str | None, ...]) -> None:
    assert split_request(request_line) == parts


# --- the whole corpus -------------------------------------------------------------------------

# Lines of the corpus that are not NGINX error-log entries and must fail, each with why. Empty: every
# entry parses (the fail2ban injection line and the cut/elided ones are in CASES with what they give).
ALLOWED_FAILURES: dict[tuple[str, str], str] = {}


def corpus_entries() -> list[tuple[str, int, str, str]]:
    """(file, first line number, raw first line, entry) for every entry of every error-log file."""
    entries: list[tuple[str, int, str, str]] = []
    for path in sorted(CORPUS.glob("*.log")):
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        for number, raw in enumerate(text.split("\n"), start=1):
            if not raw:
                continue
            _, line = strip_prefix(raw)
            if is_entry_start(line) or not entries or entries[-1][0] != path.name:
                entries.append((path.name, number, raw, line))
            else:
                name, first, first_raw, entry = entries[-1]
                entries[-1] = (name, first, first_raw, entry + "\n" + line)
    return entries


ENTRIES = corpus_entries()


def test_the_whole_corpus_parses() -> None:
    failed = {}
    for name, number, raw, entry in ENTRIES:
        result = parse_error_entry(entry)
        if isinstance(result, ParseError):
            failed[(name, raw)] = f"{name}:{number}: {result}"
    assert set(failed) == set(ALLOWED_FAILURES), "\n".join(failed.values())
    assert len(ENTRIES) > 250


def _parsed() -> list[Fields]:
    return [f for f in (parse_error_entry(e[3]) for e in ENTRIES) if not isinstance(f, ParseError)]


def test_beats_expected_fields() -> None:
    expected = json.loads((CORPUS / "beats-error.log-expected.json").read_text())
    lines = (CORPUS / "beats-error.log").read_text().split("\n")
    entries = [e for e in ENTRIES if e[0] == "beats-error.log"]
    assert len(entries) == len(expected)
    for (_, _, _, entry), want in zip(entries, expected, strict=True):
        got = parse_error_entry(entry)
        assert not isinstance(got, ParseError)
        assert got["level"] == want["log.level"]
        assert got["pid"] == want["process.pid"]
        assert got["tid"] == want["process.thread.id"]
        assert got["cid"] == want["nginx.error.connection_id"]
        assert got["time"].isoformat() == want["@timestamp"][:19]
        # Elastic keeps the context in its message; ours stops before it
        assert want["message"].startswith(got["message"])
    assert lines


def test_datadog_expected_fields() -> None:
    text = (CORPUS / "datadog-nginx_tests.expected.yaml").read_text()
    checked = 0
    for block in text.split("  - sample: ")[1:]:
        sample = block.split("\n", 1)[0]
        sample = sample[1:-1].replace("''", "'") if sample.startswith("'") else json.loads(sample)
        if not is_entry_start(sample):
            continue
        got = parse_error_entry(sample)
        assert not isinstance(got, ParseError)
        assert got["level"] == re.search(r'\n        level: "(\w+)"', block)[1]  # type: ignore[index]
        if (ip := re.search(r'\n            ip: "([^"]+)"', block)) is not None:
            assert got["client"] == ip[1]
        if (method := re.search(r'\n          method: "(\w+)"', block)) is not None:
            url = re.search(r'\n          url: "([^"]+)"', block)
            assert url is not None
            assert (got["method"], got["uri"]) == (method[1], url[1])
        checked += 1
    assert checked == 2


_ASSERT = re.compile(
    r'^results\["s01-parse"\]\["crowdsecurity/nginx-logs"\]\[(\d+)\]\.Evt\.Parsed\["(\w+)"\] == "(.*)"$', re.M
)


def test_crowdsec_expected_fields() -> None:
    by_key = {(f["time"].strftime("%Y/%m/%d %H:%M:%S"), f["cid"], f["message"]): f for f in _parsed() if f["time"]}
    checked = 0
    for path in sorted((CORPUS / "expected" / "crowdsec").glob("*/parser.assert")):
        records: dict[str, dict[str, str]] = {}
        for index, key, value in _ASSERT.findall(path.read_text()):
            records.setdefault(index, {})[key] = json.loads(f'"{value}"')
        for record in records.values():
            if "loglevel" not in record:
                continue  # an access-log record
            got = by_key[(record["time"], int(record["cid"]), record["message"])]
            assert got["level"] == record["loglevel"]
            assert (got["pid"], got["tid"]) == (int(record["pid"]), int(record["tid"]))
            assert got["client"] == record["remote_addr"]
            assert got["method"] == record.get("verb", got["method"])
            if got["uri"].startswith("/"):  # crowdsec's grok reads "https://h/p" as "//h/"
                assert got["uri"] == record.get("request", got["uri"])
            if "http_version" in record:
                assert got["protocol"] == f"HTTP/{record['http_version']}"
            checked += 1
    assert checked >= 9


def test_fail2ban_expected_hosts() -> None:
    checked = 0
    for path in sorted((CORPUS / "expected" / "fail2ban").iterdir()):
        expectation: dict[str, Any] | None = None
        for raw in path.read_text().split("\n"):
            if raw.startswith("# failJSON:"):
                expectation = json.loads(raw.removeprefix("# failJSON:"))
                continue
            if not raw or raw.startswith("#") or expectation is None:
                continue
            _, line = strip_prefix(raw)
            if is_entry_start(line) and expectation.get("match") and "host" in expectation:
                got = parse_error_entry(line)
                assert not isinstance(got, ParseError), raw
                assert got["client"] == expectation["host"], raw
                if "time" in expectation:
                    assert got["time"].isoformat() == expectation["time"]
                checked += 1
            expectation = None
    assert checked >= 25
