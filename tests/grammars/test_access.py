"""Access log grammar: tables, the whole nginx-access corpus, the corpus' expected outputs,
a differential test (lowered regex vs pyparsing) and ReDoS guards.
"""

from __future__ import annotations

import json
import re
import time as clock
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grammars import access, lowering
from grammars.access import AccessFormat, compile_log_format, parse_json_access
from grammars.result import ParseError

# ---------------------------------------------------------------- the corpus: formats per file

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "nginx-access"

COMMON = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent'
VHOST_COMBINED = compile_log_format("$host " + access.COMBINED_FORMAT, name="vhost_combined")
VHOST_MAIN = compile_log_format("$host " + access.MAIN_FORMAT, name="vhost_main")
# nginx-proxy-manager's two formats (docker/rootfs/etc/nginx/nginx.conf)
NPM_PROXY = compile_log_format(
    '[$time_local] $upstream_cache_status $upstream_status $status - $request_method $scheme $host "$request_uri"'
    ' [Client $remote_addr] [Length $body_bytes_sent] [Gzip $gzip_ratio] [Sent-to $server] "$http_user_agent"'
    ' "$http_referer"',
    name="npm_proxy",
)
NPM_STANDARD = compile_log_format(
    '[$time_local] $status - $request_method $scheme $host "$request_uri" [Client $remote_addr]'
    ' [Length $body_bytes_sent] [Gzip $gzip_ratio] "$http_user_agent" "$http_referer"',
    name="npm_standard",
)
# older/newer nginx-proxy-manager releases: proxy without, standard with the `[Sent-to …]` part
NPM_PROXY_NO_SENT = compile_log_format(NPM_PROXY.fmt.replace(" [Sent-to $server]", ""), name="npm_proxy_old")
NPM_STANDARD_SENT = compile_log_format(
    NPM_STANDARD.fmt.replace("[Gzip $gzip_ratio]", "[Gzip $gzip_ratio] [Sent-to $server]"), name="npm_standard_sent"
)
QINIU_CONF = (CORPUS / "qiniu-logkit-nginx_test.log_formats.conf").read_text()


def _conf_formats(conf: str) -> list[AccessFormat]:
    """``log_format name 'a' 'b';`` blocks of an nginx.conf excerpt (test helper, not a config parser)."""
    formats = []
    for name, body in re.findall(r"log_format\s+(\w+)\s+((?:'[^']*'\s*)+);", conf):
        formats.append(compile_log_format("".join(re.findall(r"'([^']*)'", body)), name=name))
    return formats


# file → the formats its lines were written with (from PROVENANCE.md, or read off the lines)
FORMATS: dict[str, list[AccessFormat]] = {
    "beats-access.log": [access.COMBINED, VHOST_COMBINED],
    "beats-test-with-host.log": [VHOST_COMBINED, VHOST_MAIN],
    "beats-ingress-controller.log": [access.UPSTREAMINFO],
    "crowdsec-nginx-cve-2021-41773.log": [VHOST_MAIN],
    "crowdsec-nginx_http-logs.log": [access.COMBINED, VHOST_COMBINED],
    "crowdsec-nginx-proxy-manager-logs.log": [access.COMBINED, NPM_PROXY, NPM_STANDARD],
    "crowdsec-nginx_http-catch-npm.log": [
        compile_log_format(
            '[$time_local] $host $remote_addr $request_time "$request" $status $body_bytes_sent $bytes_sent'
            " $http_referer $http_user_agent",
            name="catch_npm",
        ),
        NPM_STANDARD_SENT,
        NPM_PROXY_NO_SENT,
    ],
    "datadog-nginx-samples.log": [
        compile_log_format(COMMON, name="common"),
        access.MAIN,
        compile_log_format(COMMON + ' $request_time "$http_referer" "$http_user_agent"', name="combined_request_time"),
    ],
    "vrl-parse_nginx_log.log": [access.COMBINED, access.MAIN, access.UPSTREAMINFO],
    "issue-allinurl-goaccess-1518.custom.log": [
        compile_log_format(
            "[$time_local] $remote_addr -> $upstream_addr | $scheme $request | urt: $upstream_response_time msec"
            " | rt: $request_time msec | status: $status"
        )
    ],
    # "every field quoted" (no format given in the issue; read off the line)
    "issue-allinurl-goaccess-214.custom.log": [
        compile_log_format(
            '"$remote_addr" - "$remote_user" "[$time_local]" "$request" "$status" "$body_bytes_sent"'
            ' "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$request_time" "$upstream_addr"'
            ' "$upstream_response_time" "$host"'
        )
    ],
    "issue-allinurl-goaccess-238.custom.log": [
        compile_log_format(
            '$remote_addr $http_user_agent $request $http_x_forwarded_for $uri $upstream_addr $status "u status"'
            ' $upstream_status  "U Response" $upstream_response_time "MSec" $msec  '
        )
    ],
    "issue-allinurl-goaccess-395.custom.log": [
        compile_log_format(
            '$remote_addr -> $upstream_addr [$time_iso8601] "$request" $status $body_bytes_sent "$http_referer"'
            ' "$http_user_agent" $request_time $upstream_response_time'
        )
    ],
    "issue-allinurl-goaccess-637.custom.log": [
        compile_log_format(
            '$request_time $upstream_response_time [$time_local] $request $status $body_bytes_sent "$host"'
            ' "$http_referer" "$http_user_agent" "$gzip_ratio" $request_length $http_client_ip $remote_addr'
            " $remote_user  $connection $connection_requests $upstream_addr $upstream_cache_status"
        )
    ],
    "issue-chobits-ngx_http_proxy_connect_module-120.custom.log": [
        compile_log_format(
            access.COMBINED_FORMAT + ' "$http_x_forwarded_for" rt=$request_time uct="$upstream_connect_time"'
            ' uht="$upstream_header_time" urt="$upstream_response_time"'
        )
    ],
    "issue-grafana-loki-14868.custom.log": [
        compile_log_format(
            '$remote_addr - $remote_user [$time_local]  $status "$request" $body_bytes_sent "$http_referer"'
            ' "$http_user_agent" "$http_x_forwarded_for" "$http_x_real_ip"'
        )
    ],
    "issue-hortonworks-cloudbreak-14371.custom.log": [
        compile_log_format(access.COMBINED_FORMAT + ' "$request_id" $request_time')
    ],
    "issue-tarantool-nginx_upstream_module-121.custom.log": [
        compile_log_format('rt=$request_time urt=$upstream_response_time us=$upstream_status u="$upstream_addr"')
    ],
    "qiniu-logkit-nginx_test.log": _conf_formats(QINIU_CONF),
    "issue-docker-library-php-655.compose-prefixed.log": [access.COMBINED],
    "issue-dreeveapp-dreeve-268.compose-prefixed.log": [
        compile_log_format(access.MAIN_FORMAT + " $request_time $upstream_response_time $pipe $upstream_cache_status")
    ],
    "issue-nginx-proxy-nginx-proxy-413.forego-prefixed.log": [VHOST_COMBINED],
    "transcript-AIDock.compose-prefixed.log": [access.MAIN],
}
DEFAULT_FORMATS = [access.COMBINED, access.MAIN]

# (file, 1-based line) → why the line is truly malformed: it must fail, with a located error
KNOWN_BAD: dict[tuple[str, int], str] = {
    ("crowdsec-nginx_http-logs.log", 8): "remote_user missing (nginx always writes '-'): hand-made crowdsec line",
    ("datadog-nginx-samples.log", 3): "text after the main format: hand-made Datadog test line",
    ("beats-test.log", 5): "a quoted client list before remote_addr (no nginx format writes that): beats test line",
    ("beats-test.log", 6): "client list with a blank-only separator (nginx writes ', '): beats test line",
    ("beats-test-with-host.log", 5): "a quoted client list before remote_addr: beats test line",
    ("beats-test-with-host.log", 6): "client list with a blank-only separator: beats test line",
}

# docker compose `web_1  | `, `client  | 2026-06-28 00:38:36.983 | `; forego `nginx.1    | `
_PREFIX = re.compile(r"[\w.-]+ +\| (?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| )?")


def text_files() -> list[str]:
    """Every access-line file of the corpus except JSON lines."""
    return sorted(
        path.name
        for path in CORPUS.glob("*.log")
        if ".json." not in path.name and not path.name.endswith("expected.json")
    )


def lines_of(name: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) with any shipper prefix the file name announces removed."""
    text = (CORPUS / name).read_text(encoding="utf-8", errors="surrogateescape")
    for number, line in enumerate(text.splitlines(), 1):
        if "prefixed" in name:
            line = _PREFIX.sub("", line, count=1)
        yield number, line


def formats_for(name: str) -> list[AccessFormat]:
    return FORMATS.get(name, DEFAULT_FORMATS)


def _fields(fmt: AccessFormat, line: str) -> dict[str, Any] | ParseError:
    return fmt.parse(line)


def _first_parse(name: str, line: str) -> dict[str, Any] | ParseError:
    """The fields from the first of the file's formats that accepts the line (else the first error)."""
    results = [fmt.parse(line) for fmt in formats_for(name)]
    return next((r for r in results if not isinstance(r, ParseError)), results[0])


UTC = UTC
MINUS_7 = timezone(timedelta(hours=-7))

# ---------------------------------------------------------------- combined: a table
LINE = '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /slow.php?id=42 HTTP/1.1" 502 157 "-" "curl/8.5.0"'
PREFIX = '1.2.3.4 - - [29/Jul/2023:10:26:06 -0700] "'
SUFFIX = '" 400 157 "-" "-"'

COMBINED_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "a 502 to a PHP script",
        LINE,
        {
            "remote_addr": "127.0.0.1",
            "remote_user": None,
            "time": datetime(2026, 11, 24, 5, 42, tzinfo=UTC),
            "request": "GET /slow.php?id=42 HTTP/1.1",
            "method": "GET",
            "uri": "/slow.php?id=42",
            "protocol": "HTTP/1.1",
            "status": 502,
            "body_bytes_sent": 157,
            "http_referer": None,
            "http_user_agent": "curl/8.5.0",
        },
    ),
    ("the line feed read with the line", LINE + "\n", {"status": 502, "http_user_agent": "curl/8.5.0"}),
    # the STYLE.md trap: no space after the "method", so no method at all
    (
        "SSH banner is no request line",
        PREFIX + "SSH-2.0-Go" + SUFFIX,
        {"request": "SSH-2.0-Go", "method": None, "uri": None, "protocol": None, "status": 400},
    ),
    (
        "TLS ClientHello on port 80",
        PREFIX + r"\x16\x03\x01\x00\x85\x01" + SUFFIX,
        {
            "request": r"\x16\x03\x01\x00\x85\x01",
            "method": None,
            "time": datetime(2023, 7, 29, 10, 26, 6, tzinfo=MINUS_7),
        },
    ),
    ("no request line at all", PREFIX + "-" + SUFFIX, {"request": "-", "method": None, "uri": None}),
    ("empty request", PREFIX + SUFFIX, {"request": "", "method": None}),
    ("HTTP/0.9 style, no protocol", PREFIX + "GET /" + SUFFIX, {"request": "GET /", "method": None}),
    (
        "a space inside the URI keeps the request raw",
        PREFIX + "GET /a b HTTP/1.1" + SUFFIX,
        {"request": "GET /a b HTTP/1.1", "uri": None},
    ),
    (
        "CONNECT with host:port",
        PREFIX + "CONNECT example.com:443 HTTP/1.1" + SUFFIX,
        {"method": "CONNECT", "uri": "example.com:443", "protocol": "HTTP/2.0" if False else "HTTP/1.1"},
    ),
    ("lower-case method is still a method", PREFIX + "geti /products/42 HTTP/1.1" + SUFFIX, {"method": "geti"}),
    (
        "IPv6 client and a user",
        '::1 - alice [24/Nov/2026:05:42:00 +0100] "GET / HTTP/2.0" 200 0 "-" "-"',
        {
            "remote_addr": "::1",
            "remote_user": "alice",
            "protocol": "HTTP/2.0",
            "body_bytes_sent": 0,
            "time": datetime(2026, 11, 24, 5, 42, tzinfo=timezone(timedelta(hours=1))),
        },
    ),
    (
        '\\xHH kept as logged, \\" unescaped',
        PREFIX + "-" + '" 400 157 "-" "a \\"q\\" \\x22"',
        {"http_user_agent": 'a "q" \\x22'},
    ),
    (
        "X-Forwarded-For style client list before ' - '",
        '10.0.0.2, 10.0.0.1, 127.0.0.1 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "-"',
        {"remote_addr": "10.0.0.2, 10.0.0.1, 127.0.0.1", "uri": "/ocelot"},
    ),
    (
        "quote-free referrer with a comma",
        PREFIX + "-" + '" 400 157 "http://a/?x=1,2" "-"',
        {"http_referer": "http://a/?x=1,2"},
    ),
]

# (description, line, 1-based column where it must fail)
COMBINED_FAILURES: list[tuple[str, str, int]] = [
    ("empty line", "", 1),
    ("cut inside the time", "127.0.0.1 - - [24/Nov/2026:05:42", 16),
    ("cut inside the request", '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /slow.php', 58),
    ("cut inside the user agent", LINE[:-3], 96),
    ("status is a word", '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET / HTTP/1.1" abc 157 "-" "c"', 61),
    ("bytes missing", '127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET / HTTP/1.1" 502 "-" "c"', 65),
    ("unknown month", '127.0.0.1 - - [24/Foo/2026:05:42:00 +0000] "GET / HTTP/1.1" 502 1 "-" "c"', 16),
    ("31 February parses as text but is no date", '127.0.0.1 - - [31/Feb/2026:05:42:00 +0000] "-" 502 1 "-" "c"', 16),
    ("text after the format", LINE + " extra", 100),
    ("a JSON line", '{"status": 502}', 2),
    ("remote_user missing", '192.168.1.1 - [08/Jun/2020:08:04:43 +0000] "GET / HTTP/1.1" 200 1 "-" "c"', 74),
    ("a NUL byte where the status goes", PREFIX + "-" + '" \x00 157 "-" "-"', 46),
    ("a virtual host before the client", "example.com " + LINE, 12),
]


@pytest.mark.parametrize(("description", "line", "expected"), COMBINED_CASES, ids=[c[0] for c in COMBINED_CASES])
def test_combined_fields(description: str, line: str, expected: dict[str, Any]) -> None:
    fields = access.COMBINED.parse(line)
    assert not isinstance(fields, ParseError), fields
    assert {key: fields[key] for key in expected} == expected
    assert set(fields) >= {"remote_addr", "time", "request", "method", "uri", "protocol", "status"}


@pytest.mark.parametrize(("description", "line", "column"), COMBINED_FAILURES, ids=[c[0] for c in COMBINED_FAILURES])
def test_combined_failures_are_located(description: str, line: str, column: int) -> None:
    result = access.COMBINED.parse(line)
    assert isinstance(result, ParseError), result
    assert result.column == column, (result, result.context())
    assert result.line == line


def test_main_adds_x_forwarded_for() -> None:
    fields = access.MAIN.parse(LINE + ' "203.0.113.9, 10.0.0.1"')
    assert not isinstance(fields, ParseError)
    assert fields["http_x_forwarded_for"] == "203.0.113.9, 10.0.0.1"
    assert access.MAIN.variables[-1] == "http_x_forwarded_for"
    assert access.MAIN.name == "main" and access.COMBINED.name == "combined"


# ---------------------------------------------------------------- custom formats: a table
UPSTREAM_FORMAT = (
    '$remote_addr [$time_local] "$request" $status rt=$request_time ua="$upstream_addr" us="$upstream_status"'
    ' ut="$upstream_response_time" uct="$upstream_connect_time" cid=$connection'
)
UPSTREAM_LINE = (
    '10.1.1.1 [24/Nov/2026:05:42:00 +0000] "POST /api HTTP/1.1" 502 rt=60.001'
    ' ua="10.0.0.1:9000, unix:/run/php/a.sock : 10.0.0.2:9000" us="502, 502 : 200" ut="0.001, - : 60.000"'
    ' uct="-" cid=4711'
)

# (description, format, escape, line, expected fields)
CUSTOM_CASES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    (
        "upstream lists, both separators flattened",
        UPSTREAM_FORMAT,
        "default",
        UPSTREAM_LINE,
        {
            "upstream_addr": ["10.0.0.1:9000", "unix:/run/php/a.sock", "10.0.0.2:9000"],
            "upstream_status": [502, 502, 200],
            "upstream_response_time": [0.001, None, 60.0],
            "upstream_connect_time": None,
            "connection": 4711,
            "request_time": 60.001,
            "status": 502,
        },
    ),
    (
        "one upstream",
        UPSTREAM_FORMAT,
        "default",
        UPSTREAM_LINE.replace(
            'ua="10.0.0.1:9000, unix:/run/php/a.sock : 10.0.0.2:9000" us="502, 502 : 200" ut="0.001, - : 60.000"',
            'ua="unix:/run/php/www.sock" us="504" ut="60.002"',
        ),
        {"upstream_addr": ["unix:/run/php/www.sock"], "upstream_status": [504], "upstream_response_time": [60.002]},
    ),
    (
        "no upstream at all",
        "u=$upstream_addr s=$upstream_status",
        "default",
        "u=- s=-",
        {"upstream_addr": None, "upstream_status": None},
    ),
    (
        "ISO 8601 time",
        "$time_iso8601 $status",
        "default",
        "2026-11-24T05:42:00+01:00 502",
        {
            "time_iso8601": datetime(2026, 11, 24, 5, 42, tzinfo=timezone(timedelta(hours=1))),
            "time": datetime(2026, 11, 24, 5, 42, tzinfo=timezone(timedelta(hours=1))),
        },
    ),
    (
        "$msec gives a float and the time",
        "$msec $status",
        "default",
        "1700000000.123 502",
        {"msec": 1700000000.123, "time": datetime.fromtimestamp(1700000000.123, UTC)},
    ),
    (
        "braced variables",
        "${remote_addr}:${status}",
        "default",
        "10.0.0.1:502",
        {"remote_addr": "10.0.0.1", "status": 502},
    ),
    (
        "unknown variables: a word, or the bracket's content",
        "$scheme [$proxy_upstream_name] [$alt] $req_id",
        "default",
        "https [default-web-8080] [] 529a00",
        {"scheme": "https", "proxy_upstream_name": "default-web-8080", "alt": "", "req_id": "529a00"},
    ),
    (
        "an unquoted user agent last in the format",
        "$status $http_user_agent",
        "default",
        "200 Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        {"http_user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
    ),
    (
        "an unquoted request",
        "$request $status",
        "default",
        "GET /ready HTTP/1.1 200",
        {"request": "GET /ready HTTP/1.1", "method": "GET", "uri": "/ready", "protocol": "HTTP/1.1", "status": 200},
    ),
    (
        "tab-separated format",
        "$remote_addr\t$status\t$request_time",
        "default",
        "10.0.0.1\t502\t0.120",
        {"remote_addr": "10.0.0.1", "status": 502, "request_time": 0.12},
    ),
    (
        "trailing blanks of the format trimmed from the line",
        "$status $msec  ",
        "default",
        "200 1427761920.280",
        {"msec": 1427761920.28},
    ),
    (
        'escape=json decodes \\" and \\u',
        '"$http_user_agent" $status',
        "json",
        '"a \\"b\\" \\u00e9 \\\\" 200',
        {"http_user_agent": 'a "b" é \\', "status": 200},
    ),
    (
        "escape=none: a raw quote inside a value",
        '"$http_user_agent" "$http_referer"',
        "none",
        '"say "hi" now" "-"',
        {"http_user_agent": 'say "hi" now', "http_referer": None},
    ),
    (
        "escape=none: a raw quote inside the request keeps it raw",
        '"$request" $status',
        "none",
        '"GET /a"b HTTP/1.1" 400',
        {"request": 'GET /a"b HTTP/1.1', "method": None, "status": 400},
    ),
    (
        "escape=json request",
        '"$request" $status',
        "json",
        '"GET /caf\\u00e9 HTTP/1.1" 200',
        {"request": "GET /café HTTP/1.1", "method": None},
    ),
    (
        "escape=json plain request",
        '"$request" $status',
        "json",
        '"GET /x HTTP/1.1" 200',
        {"request": "GET /x HTTP/1.1", "method": "GET", "uri": "/x"},
    ),
    (
        "gzip_ratio and request_length",
        "$gzip_ratio $request_length $bytes_sent",
        "default",
        "- 988 4710110",
        {"gzip_ratio": None, "request_length": 988, "bytes_sent": 4710110},
    ),
]


@pytest.mark.parametrize(
    ("description", "fmt", "escape", "line", "expected"), CUSTOM_CASES, ids=[c[0] for c in CUSTOM_CASES]
)
def test_custom_formats(description: str, fmt: str, escape: str, line: str, expected: dict[str, Any]) -> None:
    compiled = compile_log_format(fmt, escape=escape)
    assert compiled.fast is not None, "every log_format lowers"
    fields = compiled.parse(line)
    assert not isinstance(fields, ParseError), (fields, fields.context() if isinstance(fields, ParseError) else "")
    assert {key: fields[key] for key in expected} == expected
    assert fields == lowering.parse_with(compiled.grammar, None, line)


@pytest.mark.parametrize(("fmt", "escape"), [("", "default"), ("$status", "xml")])
def test_bad_log_format_is_a_value_error(fmt: str, escape: str) -> None:
    with pytest.raises(ValueError):
        compile_log_format(fmt, escape=escape)


def test_access_format_attributes() -> None:
    fmt = compile_log_format(UPSTREAM_FORMAT, name="upstream")
    assert (fmt.name, fmt.fmt, fmt.escape) == ("upstream", UPSTREAM_FORMAT, "default")
    assert fmt.variables == (
        "remote_addr",
        "time_local",
        "request",
        "status",
        "request_time",
        "upstream_addr",
        "upstream_status",
        "upstream_response_time",
        "upstream_connect_time",
        "connection",
    )
    assert "upstream" in repr(fmt)


# ---------------------------------------------------------------- the whole corpus
CORPUS_LINES = [(name, number, line) for name in text_files() for number, line in lines_of(name)]


def test_corpus_is_there() -> None:
    assert len(CORPUS_LINES) > 1200
    assert (CORPUS / "PROVENANCE.md").exists()


@pytest.mark.parametrize("name", text_files())
def test_every_corpus_line_parses(name: str) -> None:
    for number, line in lines_of(name):
        result = _first_parse(name, line)
        if (name, number) in KNOWN_BAD:
            assert isinstance(result, ParseError), (name, number, KNOWN_BAD[name, number])
            assert 1 <= result.column <= len(line) + 1
            continue
        assert not isinstance(result, ParseError), (name, number, str(result), result.context())
        assert result.get("status") is None or 100 <= result["status"] <= 999


@pytest.mark.parametrize("name", text_files())
def test_fast_path_and_pyparsing_agree_on_the_corpus(name: str) -> None:
    for _, line in lines_of(name):
        for fmt in formats_for(name):
            assert fmt.fast is not None
            _assert_agree(fmt, line)


def _assert_agree(fmt: AccessFormat, line: str) -> None:
    assert fmt.fast is not None
    fast = fmt.fast.parse(line)
    slow = lowering.parse_with(fmt.grammar, None, line)
    if fast is None:
        assert isinstance(slow, ParseError), (fmt.name, line, slow)
    else:
        assert fast == slow, (fmt.name, line)


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.json.log")))
def test_json_access_lines(name: str) -> None:
    for line in (CORPUS / name).read_text().splitlines():
        fields = parse_json_access(line)
        assert not isinstance(fields, ParseError), fields
        assert fields["time"] is None or fields["time"].tzinfo is not None  # 1196 names its time "log_time"
        raw = json.loads(line)
        assert set(raw) <= set(fields), "unknown keys are kept"


def test_json_access_types_and_request() -> None:
    line = (
        '{"remote_addr":"10.0.0.1","time_local":"24/Nov/2026:05:42:00 +0000","request":"GET /x?q HTTP/1.1",'
        '"status":"502","request_time":0.5,"upstream_addr":"10.0.0.7:9000, 10.0.0.8:9000",'
        '"upstream_status":"502, 502","http_referer":"-","custom":{"a":1}}'
    )
    fields = parse_json_access(line)
    assert not isinstance(fields, ParseError)
    assert fields["status"] == 502 and fields["request_time"] == 0.5
    assert fields["time"] == datetime(2026, 11, 24, 5, 42, tzinfo=UTC)
    assert (fields["method"], fields["uri"], fields["protocol"]) == ("GET", "/x?q", "HTTP/1.1")
    assert fields["upstream_addr"] == ["10.0.0.7:9000", "10.0.0.8:9000"] and fields["upstream_status"] == [502, 502]
    assert fields["http_referer"] is None and fields["custom"] == {"a": 1}


@pytest.mark.parametrize(
    ("description", "line"),
    [("not JSON", "{oops"), ("a list", "[1, 2]"), ("status not a number", '{"status": "abc"}'), ("empty", "")],
)
def test_json_access_failures(description: str, line: str) -> None:
    result = parse_json_access(line)
    assert isinstance(result, ParseError) and result.column >= 1


# ---------------------------------------------------------------- what the corpus' sources expect
def _by_line(name: str) -> dict[str, dict[str, Any]]:
    return {line: _first_parse(name, line) for _, line in lines_of(name)}  # type: ignore[misc]


def test_beats_expected_fields() -> None:
    expected = json.loads((CORPUS / "beats-test.log-expected.json").read_text())
    text = (CORPUS / "beats-test.log").read_text()
    checked = 0
    for doc in expected:
        line = text[doc["log.offset"] :].split("\n", 1)[0]
        fields = _first_parse("beats-test.log", line)
        if isinstance(fields, ParseError):
            assert any(line == text for n, text in lines_of("beats-test.log") if ("beats-test.log", n) in KNOWN_BAD)
            continue
        assert not isinstance(fields, ParseError)
        assert fields["status"] == doc["http.response.status_code"]
        assert fields["body_bytes_sent"] == doc["http.response.body.bytes"]
        assert fields["method"] == doc.get("http.request.method")
        assert fields["uri"] == doc.get("url.original")
        agent = doc.get("user_agent.original")
        assert fields["http_user_agent"] == (None if agent == "-" else agent)
        referrer = doc.get("http.request.referrer")
        assert fields["http_referer"] == (None if referrer == "-" else referrer)
        assert fields["time"] == datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        # a proxy-written client list stays text in remote_addr; beats splits it the same way
        assert fields["remote_addr"].split(", ") == doc["nginx.access.remote_ip_list"]
        checked += 1
    assert checked == len(expected) - 2 > 4  # two lines are KNOWN_BAD


VRL_FIELDS = {
    "client": "remote_addr",
    "remote_addr": "remote_addr",
    "user": "remote_user",
    "remote_user": "remote_user",
    "request": "request",
    "status": "status",
    "size": "body_bytes_sent",
    "body_bytes_size": "body_bytes_sent",
    "referer": "http_referer",
    "http_referer": "http_referer",
    "agent": "http_user_agent",
    "http_user_agent": "http_user_agent",
    "http_x_forwarded_for": "http_x_forwarded_for",
    "request_length": "request_length",
    "request_time": "request_time",
    "upstream_addr": "upstream_addr",
    "upstream_status": "upstream_status",
    "upstream_response_time": "upstream_response_time",
}


def test_vrl_expected_fields() -> None:
    docs = json.loads((CORPUS / "vrl-parse_nginx_log.docs-expected.json").read_text())
    formats = {"combined": access.COMBINED, "main": access.MAIN, "ingress_upstreaminfo": access.UPSTREAMINFO}
    checked = 0
    for example in docs["examples"]:
        found = re.search(r"s'(.*)',\s*\"(\w+)\"", example["source"], re.S)
        assert found is not None
        line, kind = found[1], found[2]
        if kind == "error":
            continue
        # VRL's combined also takes a trailing optional field (its "compression"): our main has one
        fields = next(r for r in (f.parse(line) for f in (formats[kind], access.MAIN)) if not isinstance(r, ParseError))
        for theirs, value in example["return"].items():
            if theirs == "timestamp":
                assert fields["time"] == datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif theirs in VRL_FIELDS:
                ours = fields[VRL_FIELDS[theirs]]
                ours = ours[0] if isinstance(ours, list) and len(ours) == 1 else ours
                assert ours == value, (theirs, ours, value)
        checked += 1
    assert checked >= 3


def test_datadog_expected_fields() -> None:
    """The few fields we share with Datadog's pipeline test (parsed by hand: no YAML library needed)."""
    text = (CORPUS / "datadog-nginx_tests.expected.yaml").read_text()
    checked = 0
    for block in re.split(r"\n  - sample: ", text)[1:]:
        sample = block.split("\n", 1)[0]
        line = sample[1:-1].replace("''", "'") if sample.startswith("'") else json.loads(sample)
        if re.match(r"\d{4}/\d\d/\d\d ", line):
            continue  # an error-log sample
        fields = _first_parse("datadog-nginx-samples.log", line)
        if isinstance(fields, ParseError):
            assert ("datadog-nginx-samples.log", 3) in KNOWN_BAD and "random characters" in line
            continue

        def value(key: str) -> str | None:
            found = re.search(rf"\n\s+{key}: (.+)", block)  # noqa: B023 (called in this iteration)
            return found[1].strip('"') if found else None

        assert fields["status"] == int(value("status_code") or 0)
        assert fields["method"] == value("method")
        assert fields["uri"] == value("url")
        assert fields["remote_addr"] == value("ip")
        assert int(fields["time"].timestamp() * 1000) == int(value("date_access") or 0)
        if value("bytes_written"):
            assert fields["body_bytes_sent"] == int(value("bytes_written") or 0)
        checked += 1
    assert checked >= 3


def _crowdsec_parsed(test: str) -> list[dict[str, str]]:
    """Each event's ``Evt.Parsed`` map from a crowdsec ``parser.assert`` (s01-parse stage)."""
    events: dict[tuple[str, int], dict[str, str]] = {}
    path = CORPUS / "expected" / "crowdsec" / test / "parser.assert"
    pattern = re.compile(r'results\["s01-parse"\]\["([^"]+)"\]\[(\d+)\]\.Evt\.Parsed\["(\w+)"\] == (".*")$')
    for line in path.read_text().splitlines():
        found = pattern.match(line)
        if found:
            events.setdefault((found[1], int(found[2])), {})[found[3]] = json.loads(found[4])
    return [event for event in events.values() if "status" in event and "message" in event]


CROWDSEC_FILES = {
    "nginx_http-logs": "crowdsec-nginx_http-logs.log",
    "nginx-http-malformed": "crowdsec-nginx-http-malformed.log",
    "nginx-proxy-manager-logs": "crowdsec-nginx-proxy-manager-logs.log",
    "nginx-proxy-manager-malformed": "crowdsec-nginx-proxy-manager-malformed.log",
    "nginx_http-catch-npm": "crowdsec-nginx_http-catch-npm.log",
}


@pytest.mark.parametrize("test", sorted(CROWDSEC_FILES))
def test_crowdsec_expected_fields(test: str) -> None:
    name = CROWDSEC_FILES[test]
    known_bad = {
        line for (file, number), _ in KNOWN_BAD.items() if file == name for n, line in lines_of(name) if n == number
    }
    checked = 0
    for event in _crowdsec_parsed(test):
        line = event["message"]
        fields = _first_parse(name, line)
        if line in known_bad:
            continue  # crowdsec's grok takes a missing user; nginx never writes one (KNOWN_BAD)
        assert not isinstance(fields, ParseError), (line, fields)
        assert fields["remote_addr"] == event["remote_addr"]
        assert fields["status"] == int(event["status"])
        assert fields["time"].strftime("%d/%b/%Y:%H:%M:%S %z") == event["time_local"]
        if "verb" in event:
            assert (fields.get("method") or fields.get("request_method")) == event["verb"]
        if "request" in event and "verb" in event:
            assert (fields.get("uri") or fields.get("request_uri")) == event["request"]
        elif "request" in event:  # no method: crowdsec keeps the whole request, as we do
            assert fields["request"] == event["request"] and fields["method"] is None
        for key in ("body_bytes_sent", "bytes_sent"):
            if key in event:
                assert fields[key] == int(event[key])
        for key in ("http_user_agent", "http_referer"):
            if key in event:
                assert fields[key] == (None if event[key] == "-" else event[key])
        checked += 1
    assert checked >= 2


# ---------------------------------------------------------------- differential: generated lines
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters='"\\'), max_size=30)
_ESCAPED = st.lists(st.one_of(_TEXT, st.sampled_from([r"\x16", r"\x22", r"\x5C", r"\"", "-", ""])), max_size=4).map(
    "".join
)
_WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='"\\'), min_size=1, max_size=12)
_IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_ADDR = st.one_of(
    _IPV4,
    st.sampled_from(["::1", "2a02:cf40::7", "[2a02:cf40::7]:5000", "unix:/run/php/www.sock"]),
    _IPV4.map(lambda a: a + ":9000"),
)
_INT = st.one_of(st.integers(0, 10**9).map(str), st.just("-"))
_FLOAT = st.one_of(st.floats(0, 1000, allow_nan=False).map(lambda f: f"{f:.3f}"), st.just("-"))
_TIME = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(
    lambda d: d.strftime("%d/%b/%Y:%H:%M:%S") + " " + ("+0000", "-0700", "+0530")[d.second % 3]
)
_ISO = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S+01:00"))
_MSEC = st.integers(0, 4 * 10**12).map(lambda ms: f"{ms // 1000}.{ms % 1000:03d}")


def _listed(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def join(items: list[str], seps: list[str]) -> str:
        out = items[0]
        for value, sep in zip(items[1:], seps):
            out += sep + value
        return out

    return st.one_of(
        st.just("-"),
        st.builds(
            join,
            st.lists(item, min_size=1, max_size=3),
            st.lists(st.sampled_from([", ", " : "]), min_size=2, max_size=2),
        ),
    )


_REQUEST = st.one_of(
    st.builds(
        lambda m, u, p: f"{m} {u} {p}",
        st.sampled_from(["GET", "POST", "PATCH", "M-SEARCH", "geti"]),
        _WORD.map(lambda w: "/" + w),
        st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]),
    ),
    st.sampled_from(["-", "", "SSH-2.0-Go", r"\x16\x03\x01\x00", "GET /", "GET /a b HTTP/1.1"]),
    _ESCAPED,
)
VARIABLES: dict[str, st.SearchStrategy[str]] = {
    "remote_addr": _ADDR,
    "remote_user": st.one_of(st.just("-"), _WORD),
    "time_local": _TIME,
    "time_iso8601": _ISO,
    "msec": _MSEC,
    "request": _REQUEST,
    "status": _INT,
    "body_bytes_sent": _INT,
    "connection": _INT,
    "request_time": _FLOAT,
    "upstream_addr": _listed(_ADDR),
    "upstream_status": _listed(_INT),
    "upstream_response_time": _listed(_FLOAT),
    "http_referer": _ESCAPED,
    "http_user_agent": _ESCAPED,
    "host": _WORD,
    "scheme": st.sampled_from(["http", "https"]),
}
_SEPARATORS = [" ", " - ", " | ", "\t", ",", " rt="]


@st.composite
def format_and_line(draw: st.DrawFn) -> tuple[str, str]:
    """A random log_format over typed variables, and a line nginx could have written for it."""
    names = draw(st.lists(st.sampled_from(sorted(VARIABLES)), min_size=1, max_size=7, unique=True))
    fmt, line = "", ""
    for index, name in enumerate(names):
        quoted = name in ("request", "http_referer", "http_user_agent") or draw(st.booleans()) and name != "request"
        value = draw(VARIABLES[name])
        if index:
            sep = draw(st.sampled_from(_SEPARATORS))
            fmt, line = fmt + sep, line + sep
        if quoted:
            fmt, line = fmt + f'"${name}"', line + f'"{value}"'
        else:
            fmt, line = fmt + f"${name}", line + value
    mutate = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if mutate == "cut" and line:
        line = line[: draw(st.integers(0, len(line) - 1))]
    elif mutate == "insert":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(['"', " ", "-", "\\", "x", ", "])) + line[at:]
    return fmt, line


_COMPILED: dict[str, AccessFormat] = {}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(format_and_line())
def test_fast_path_and_pyparsing_agree_on_generated_lines(case: tuple[str, str]) -> None:
    fmt_text, line = case
    fmt = _COMPILED.get(fmt_text) or _COMPILED.setdefault(fmt_text, compile_log_format(fmt_text))
    _assert_agree(fmt, line)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_fast_path_and_pyparsing_agree_on_junk(line: str) -> None:
    for fmt in (access.COMBINED, access.MAIN, access.UPSTREAMINFO):
        _assert_agree(fmt, line)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        lambda a, t, r, s, b, ref, ua: f'{a} - - [{t}] "{r}" {s} {b} "{ref}" "{ua}"',
        _ADDR,
        _TIME,
        _REQUEST,
        _INT,
        _INT,
        _ESCAPED,
        _ESCAPED,
    )
)
def test_generated_combined_lines_parse(line: str) -> None:
    fields = access.COMBINED.parse(line)
    if isinstance(fields, ParseError):
        # only impossible dates (31 February) may fail a generated line
        assert "time" in fields.reason, (fields, line)
        return
    assert fields["request"] is not None
    if fields["method"] is not None:
        assert fields["request"] == f"{fields['method']} {fields['uri']} {fields['protocol']}"


# ---------------------------------------------------------------- bounded time on hostile lines
HOSTILE = [
    ("1 MB line", '1.2.3.4 - - [24/Nov/2026:05:42:00 +0000] "' + "A" * 1_000_000),
    ("100,000 quotes", '"' * 100_000),
    ("100,000 backslash-quotes", '1.2.3.4 - - [24/Nov/2026:05:42:00 +0000] "' + '\\"' * 50_000),
    ("a long run of ' - '", " - " * 100_000),
    ("upstream list that never ends", '10.1.1.1 [24/Nov/2026:05:42:00 +0000] "-" 502 rt=1 ua="' + "a, " * 100_000),
]


@pytest.mark.parametrize(("description", "line"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_lines_fail_fast(description: str, line: str) -> None:
    """A ReDoS guard, not a speed test: a hostile line is rejected in bounded time."""
    for fmt in (access.COMBINED, access.MAIN, compile_log_format(UPSTREAM_FORMAT)):
        started = clock.perf_counter()
        result = fmt.parse(line)
        elapsed = clock.perf_counter() - started
        assert isinstance(result, ParseError)
        assert elapsed < 2.0, (description, fmt.name, elapsed)
