"""Join tests as Case/Message tables: no broker, no files — events in, incidents out.

Fields follow docs/contracts.md; the raw texts are real lines (see tests/corpus/PROVENANCE.md files)
with their times moved so each case reads on one clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.core.events import NGINX_ACCESS, NGINX_ERROR, PHP_FPM, Event, SourceRef
from processor.diagnosis.join import DiagnosisJoin, JoinSettings
from processor.diagnosis.topology import PoolInfo, Topology, address_key

T0 = datetime(2026, 11, 24, 5, 42, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)

SLOW = PoolInfo(
    "slow",
    "/run/php/slow.sock",
    "unix:/run/php/slow.sock",
    "pool.d/slow.conf:4",
    "php-fpm.conf",
    request_terminate_timeout_s=2.0,
    request_terminate_timeout_origin="pool.d/slow.conf:9",
)
WWW = PoolInfo("www", "/run/php/www.sock", "unix:/run/php/www.sock", "pool.d/www.conf:4", "php-fpm.conf")
CONFIGS = Topology(pools=(SLOW, WWW))
NO_CONFIGS = Topology()


@dataclass(frozen=True)
class Message:
    stream: str
    at_s: float
    fields: dict[str, Any]
    raw: str = ""
    host: str = "web-1"

    @property
    def log_type(self) -> str:
        if self.stream.startswith("access"):
            return NGINX_ACCESS
        return NGINX_ERROR if self.stream.startswith("error") else PHP_FPM

    def event(self, offset: int) -> Event:
        ts_ms = T0_MS + int(self.at_s * 1000)
        raw = self.raw or f"{self.stream}:{self.at_s}:{sorted(self.fields.items())}"
        return Event(self.log_type, self.host, ts_ms, dict(self.fields), SourceRef(self.stream, offset), raw)


@dataclass(frozen=True)
class Case:
    name: str
    messages: list[Message]
    expect: list[tuple[str, int, str | None, str | None]]  # (cause, status, pool, pool_source)
    topology: Topology = CONFIGS
    join: JoinSettings = field(default_factory=JoinSettings)


def access(at: float, uri: str, status: int = 502, client: str = "127.0.0.1", **more: Any) -> Message:
    request = f"GET {uri} HTTP/1.1"
    f = {
        "remote_addr": client,
        "request": request,
        "method": "GET",
        "uri": uri,
        "protocol": "HTTP/1.1",
        "status": status,
        **more,
    }
    return Message("access.log", at, f, raw=f'{client} - - [..] "{request}" {status} 0 "-" "curl/8" {more}')


def error(
    at: float,
    uri: str,
    kind: str,
    errno: int | None,
    upstream: str,
    action: str | None,
    client: str = "127.0.0.1",
    cid: int | None = None,
    target: str | None = None,
) -> Message:
    request = f"GET {uri} HTTP/1.1"
    f = {
        "kind": kind,
        "errno": errno,
        "action": action,
        "client": client,
        "request": request,
        "method": "GET",
        "uri": uri,
        "upstream": upstream,
        "connect_target": target,
        "cid": cid,
        "level": "error",
    }
    return Message("error.log", at, f)


def no_socket(at: float, uri: str, socket: str = "/run/php/www.sock") -> Message:
    """NGINX's `connect() to unix:… failed (2: No such file or directory)` for the request."""
    return error(
        at, uri, "connect_failed", 2, f"fastcgi://unix:{socket}:", "connecting to upstream", target=f"unix:{socket}"
    )


def fpm(at: float, kind: str, pool: str | None = None, stream: str = "php-fpm.log", **more: Any) -> Message:
    return Message(stream, at, {"kind": kind, "pool": pool, **more})


SLOW_UP = "fastcgi://unix:/run/php/slow.sock:"
RESET = ("recv_failed", 104)

CASES = [
    # the reason the join exists: the same recv() 104, told apart only by the FPM log
    Case(
        "fpm_timeout: execution timed out + SIGTERM follow-up",
        [
            access(2.0, "/slow.php?id=1", request_time=2.004),
            error(2.0, "/slow.php?id=1", *RESET, SLOW_UP, "reading response header from upstream"),
            fpm(1.9, "timed_out", "slow", child_pid=71, uri="/slow.php?id=1", duration_s=2.0),
            fpm(1.95, "exited_signal", "slow", child_pid=71, signal=15, signal_name="SIGTERM"),
        ],
        [("fpm_timeout", 502, "slow", "config")],
    ),
    Case(
        "child_crash: SIGSEGV, no timeout",
        [
            access(2.0, "/crash.php?id=2"),
            error(2.0, "/crash.php?id=2", *RESET, SLOW_UP, "reading response header from upstream"),
            fpm(2.0, "exited_signal", "slow", child_pid=72, signal=11, signal_name="SIGSEGV", core_dumped=True),
        ],
        [("child_crash", 502, "slow", "config")],
    ),
    # a SIGTERM that does not follow a timeout is someone killing the worker
    Case(
        "child_crash: lone SIGTERM",
        [
            access(2.0, "/x.php?id=3"),
            error(2.0, "/x.php?id=3", "premature_close", None, SLOW_UP, "reading response header from upstream"),
            fpm(2.0, "exited_signal", "slow", child_pid=73, signal=15, signal_name="SIGTERM"),
        ],
        [("child_crash", 502, "slow", "config")],
    ),
    # out of order within the lateness: the FPM line arrives last
    Case(
        "fpm evidence arrives after the failure",
        [
            error(2.0, "/slow.php?id=4", *RESET, SLOW_UP, "reading response header from upstream"),
            access(2.0, "/slow.php?id=4"),
            fpm(1.9, "timed_out", "slow", child_pid=74, uri="/slow.php?id=4"),
        ],
        [("fpm_timeout", 502, "slow", "config")],
    ),
    Case(
        "no FPM log: upstream_reset, never a guess",
        [
            access(2.0, "/slow.php?id=5"),
            error(2.0, "/slow.php?id=5", *RESET, SLOW_UP, "reading response header from upstream"),
        ],
        [("upstream_reset", 502, "slow", "config")],
    ),
    Case(
        "$request_time at the pool's timeout stands in for the FPM log",
        [
            access(2.0, "/slow.php?id=6", request_time=2.01),
            error(2.0, "/slow.php?id=6", *RESET, SLOW_UP, "reading response header from upstream"),
        ],
        [("fpm_timeout", 502, "slow", "config")],
    ),
    Case("access only: unknown", [access(1.0, "/a?id=7")], [("unknown", 502, None, None)], NO_CONFIGS),
    Case(
        "error only: status inferred 504",
        [
            error(1.0, "/t.php?id=8", "upstream_timed_out", 110, SLOW_UP, "reading response header from upstream"),
        ],
        [("nginx_timeout", 504, "slow", "config")],
    ),
    Case(
        "TCP backlog full: upstream timed out while connecting",
        [
            access(1.0, "/b?id=9", status=504),
            error(1.0, "/b?id=9", "upstream_timed_out", 110, "fastcgi://127.0.0.1:9001", "connecting to upstream"),
        ],
        [("pool_saturated", 504, None, None)],
        NO_CONFIGS,
    ),
    Case(
        "errno 2, configs know the pool: fpm_down",
        [
            access(1.0, "/?id=10"),
            no_socket(1.0, "/?id=10"),
            fpm(0.5, "exiting", None),
        ],
        [("fpm_down", 502, "www", "config")],
    ),
    Case(
        "errno 2, no pool listens there: socket_mismatch",
        [
            access(1.0, "/?id=11"),
            no_socket(1.0, "/?id=11", "/run/php/php8.2-fpm.sock"),
            fpm(0.2, "ready", None),
            fpm(0.3, "child_started", "www", child_pid=5),
        ],
        [("socket_mismatch", 502, None, None)],
    ),
    Case(
        "errno 2 without configs or FPM log: socket_missing",
        [
            access(1.0, "/?id=12"),
            no_socket(1.0, "/?id=12"),
        ],
        [("socket_missing", 502, None, None)],
        NO_CONFIGS,
    ),
    Case(
        "errno 2 without configs, the only master said bye-bye: fpm_down",
        [
            fpm(0.1, "ready", None),
            fpm(0.2, "child_started", "www", child_pid=5),
            fpm(0.5, "exiting", None),
            access(1.0, "/?id=13"),
            no_socket(1.0, "/?id=13"),
        ],
        [("fpm_down", 502, "www", "socket_name")],
        NO_CONFIGS,
    ),
    # a `systemctl restart` inside one second: logs of whole seconds show bye-bye and running at the failure's
    # second; a connect() that found no socket in that second met the master down
    Case(
        "errno 2 without configs, the master restarted within the failure's second: fpm_down",
        [
            fpm(0.1, "ready", None),
            fpm(0.2, "child_started", "www", child_pid=5),
            fpm(1.0, "exiting", None),
            fpm(1.0, "running", None),
            fpm(1.0, "ready", None),
            access(1.0, "/?id=13"),
            no_socket(1.0, "/?id=13"),
        ],
        [("fpm_down", 502, "www", "socket_name")],
        NO_CONFIGS,
    ),
    # stopped late in one second, back early in the next: a failure of that next second may be from before the
    # restart (the logs carry whole seconds), and a connect() that found no socket then met the master down
    Case(
        "errno 2 without configs, the master stopped the second before and is back in the failure's: fpm_down",
        [
            fpm(0.1, "ready", None),
            fpm(0.2, "child_started", "www", child_pid=5),
            fpm(0.5, "terminating", None),
            fpm(0.5, "exiting", None),
            fpm(1.0, "running", None),
            fpm(1.0, "ready", None),
            access(1.0, "/?id=13"),
            no_socket(1.0, "/?id=13"),
        ],
        [("fpm_down", 502, "www", "socket_name")],
        NO_CONFIGS,
    ),
    # started and stopped within one second (a crash loop, a failed reload): in log order it ends stopped, and
    # the failures of the next seconds met it down (sorted up-after-down, it read as running)
    Case(
        "errno 2 without configs, the master started and stopped in one second: fpm_down",
        [
            fpm(0.0, "running", None),
            fpm(0.0, "ready", None),
            fpm(0.0, "terminating", None),
            fpm(0.0, "exiting", None),
            access(2.0, "/?id=13"),
            no_socket(2.0, "/?id=13"),
        ],
        [("fpm_down", 502, "www", "socket_name")],
        NO_CONFIGS,
    ),
    Case(
        "errno 2 without configs, the master came back a second before: socket_missing",
        [
            fpm(0.1, "ready", None),
            fpm(0.2, "child_started", "www", child_pid=5),
            fpm(0.0, "exiting", None),
            fpm(0.0, "running", None),
            access(1.0, "/?id=13"),
            no_socket(1.0, "/?id=13"),
        ],
        [("socket_missing", 502, None, None)],
        NO_CONFIGS,
    ),
    Case(
        "errno 111 on a unix socket: a killed master's stale socket",
        [
            access(1.0, "/?id=14"),
            error(
                1.0,
                "/?id=14",
                "connect_failed",
                111,
                "fastcgi://unix:/run/php/www.sock:",
                "connecting to upstream",
                target="unix:/run/php/www.sock",
            ),
        ],
        [("fpm_down", 502, "www", "config")],
    ),
    Case(
        "errno 13",
        [
            access(1.0, "/?id=15"),
            error(
                1.0,
                "/?id=15",
                "connect_failed",
                13,
                "fastcgi://unix:/run/php/www.sock:",
                "connecting to upstream",
                target="unix:/run/php/www.sock",
            ),
        ],
        [("socket_permission", 502, "www", "config")],
    ),
    Case(
        "errno 11: unix backlog full, max_children logged earlier in the episode",
        [
            fpm(-30.0, "max_children", "www", max_children=5),
            access(1.0, "/?id=16"),
            error(
                1.0,
                "/?id=16",
                "connect_failed",
                11,
                "fastcgi://unix:/run/php/www.sock:",
                "connecting to upstream",
                target="unix:/run/php/www.sock",
            ),
        ],
        [("pool_saturated", 502, "www", "config")],
    ),
    Case(
        "TCP refused",
        [
            access(1.0, "/?id=17"),
            error(
                1.0,
                "/?id=17",
                "connect_failed",
                111,
                "fastcgi://127.0.0.1:9009",
                "connecting to upstream",
                target="127.0.0.1:9009",
            ),
        ],
        [("tcp_refused", 502, None, None)],
    ),
    Case(
        "too big header",
        [
            access(1.0, "/h?id=18"),
            error(1.0, "/h?id=18", "too_big_header", None, SLOW_UP, "reading response header from upstream"),
        ],
        [("too_big_header", 502, "slow", "config")],
    ),
    Case(
        "a 500 with a PHP fatal is not an incident",
        [
            access(1.0, "/fatal.php?id=19", status=500),
            Message(
                "error.log",
                1.0,
                {
                    "kind": "fastcgi_stderr",
                    "action": "reading response header from upstream",
                    "client": "127.0.0.1",
                    "request": "GET /fatal.php?id=19 HTTP/1.1",
                },
            ),
        ],
        [],
    ),
    Case(
        "two concurrent failures, each its own timeout line (URI tie-breaker)",
        [
            access(2.0, "/slow.php?id=20"),
            access(2.0, "/slow.php?id=21"),
            error(2.0, "/slow.php?id=20", *RESET, SLOW_UP, "reading response header from upstream"),
            error(2.0, "/slow.php?id=21", *RESET, SLOW_UP, "reading response header from upstream"),
            fpm(1.9, "timed_out", "slow", child_pid=80, uri="/slow.php?id=21"),
            fpm(1.9, "exited_signal", "slow", child_pid=81, signal=11, signal_name="SIGSEGV"),
        ],
        [("child_crash", 502, "slow", "config"), ("fpm_timeout", 502, "slow", "config")],
    ),
    # connection id ($connection = *cid) is exact where the request line is shared
    Case(
        "cid decides between two identical requests",
        [
            access(1.0, "/same", connection=7),
            access(1.5, "/same", status=504, connection=9),
            error(1.4, "/same", "upstream_timed_out", 110, SLOW_UP, "reading response header from upstream", cid=9),
            error(1.0, "/same", "too_big_header", None, SLOW_UP, "reading response header from upstream", cid=7),
        ],
        [("too_big_header", 502, "slow", "config"), ("nginx_timeout", 504, "slow", "config")],
    ),
]


def run(case: Case, order: list[int] | None = None) -> tuple[list[dict[str, Any]], DiagnosisJoin]:
    join = DiagnosisJoin(case.topology, case.join)
    events = [m.event(i + 1) for i, m in enumerate(case.messages)]
    out: list[dict[str, Any]] = []
    for i in order if order is not None else range(len(events)):
        out.extend(join.process(events[i]))
    out.extend(join.flush())
    return out, join


def summary(incidents: list[dict[str, Any]]) -> list[tuple[str, int, str | None, str | None]]:
    return sorted(
        (
            i["badgateway"]["cause"],
            i["http"]["response"]["status_code"],
            i["php_fpm"]["pool"],
            i["php_fpm"]["pool_source"],
        )
        for i in incidents
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_join_cases(case: Case) -> None:
    out, _ = run(case)
    assert summary(out) == sorted(case.expect)


def test_incident_carries_the_contract_fields() -> None:
    out, _ = run(CASES[0])
    inc = out[0]
    assert inc["@timestamp"] == "2026-11-24T05:42:02.000Z"
    assert inc["http"]["request"]["method"] == "GET" and inc["url"]["original"] == "/slow.php?id=1"
    assert inc["source"]["ip"] == "127.0.0.1" and inc["host"]["name"] == "web-1"
    assert inc["nginx"]["upstream"]["address"] == "unix:/run/php/slow.sock"
    assert "request_terminate_timeout = 2s in pool.d/slow.conf:9" in inc["badgateway"]["remediation"]
    assert inc["evidence"]["nginx_error"]["source"] == "error.log:2"
    assert [e["fields"]["kind"] for e in inc["evidence"]["php_fpm"]] == ["timed_out", "exited_signal"]
    assert inc["event"]["id"].startswith("bgw-") and inc["event"]["late"] is False


def test_emits_once_when_the_window_closes_not_before() -> None:
    case = CASES[3]
    join = DiagnosisJoin(case.topology, case.join)
    events = [m.event(i) for i, m in enumerate(case.messages)]
    assert join.process(events[0]) == [] and join.process(events[1]) == []
    # the FPM line comes in while the window is open: no eager "upstream_reset" was emitted
    assert join.process(events[2]) == []
    far = Message("access.log", 60.0, {"remote_addr": "10.0.0.9", "request": "GET / HTTP/1.1", "status": 200})
    close = Message("php-fpm.log", 60.0, {"kind": "child_started", "pool": "www"})
    err = Message("error.log", 60.0, {"kind": "other"})
    out = join.process(far.event(10)) + join.process(close.event(11)) + join.process(err.event(12))
    assert summary(out) == [("fpm_timeout", 502, "slow", "config")]


def test_late_record_beyond_lateness_still_produces_a_late_incident() -> None:
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings(allowed_lateness_ms=1000))
    streams = [access(100.0, "/"), fpm(100.0, "child_started", "www"), Message("error.log", 100.0, {"kind": "other"})]
    for i, m in enumerate(streams):
        join.process(m.event(i))
    out = join.process(access(10.0, "/old?id=1").event(99))
    out += join.flush()
    assert join.counters.late_records == 1 and join.counters.late_incidents == 1
    assert [i["event"]["late"] for i in out if i["url"]["original"] == "/old?id=1"] == [True]


def test_same_request_in_two_access_logs_is_one_incident() -> None:
    a = access(1.0, "/two?id=1")
    b = Message("access-combined.log", 1.0, a.fields, raw="other format " + a.raw)
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings())
    events = [
        a.event(1),
        Event(NGINX_ACCESS, "web-1", T0_MS + 1000, dict(a.fields), SourceRef("access-combined.log", 1), b.raw),
    ]
    out = join.process(events[0]) + join.process(events[1]) + join.flush()
    assert len(out) == 1 and len(out[0]["evidence"]["duplicates"]) == 1


def test_idle_input_stops_holding_the_window() -> None:
    # the FPM log went quiet: after idle_timeout of processing time it stops holding the window open
    join = DiagnosisJoin(CONFIGS, JoinSettings(idle_timeout_ms=10_000))
    join.advance(T0_MS)
    join.process(fpm(0.0, "child_started", "www").event(1))
    assert join.advance(T0_MS + 15_000) == []
    assert join.process(access(1.0, "/x?id=1").event(2)) == []
    out = join.process(access(30.0, "/ok", status=200).event(3))
    assert [i["badgateway"]["cause"] for i in out] == ["unknown"]
    assert out[0]["badgateway"]["idle_inputs"] == ["php-fpm.log"]


def test_a_live_quiet_input_holds_the_window() -> None:
    join = DiagnosisJoin(CONFIGS, JoinSettings(idle_timeout_ms=10_000))
    join.advance(T0_MS)
    join.process(fpm(0.0, "child_started", "www").event(1))
    join.process(access(1.0, "/x?id=1").event(2))
    assert join.process(access(30.0, "/ok", status=200).event(3)) == []


def test_far_future_record_does_not_make_everything_late() -> None:
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings(allowed_lateness_ms=2000))
    join.process(access(1.0, "/a", status=200).event(1))
    join.process(access(10 * 365 * 86400.0, "/future", status=200).event(2))  # a clock 10 years off
    join.process(access(2.0, "/b?id=1").event(3))
    assert join.counters.late_records == 0 and join.counters.future_records == 1


def test_memory_stays_bounded_by_the_cap() -> None:
    join = DiagnosisJoin(NO_CONFIGS, JoinSettings(max_state=100))
    out: list[dict[str, Any]] = []
    for i in range(1000):
        out.extend(join.process(access(1.0, f"/x?id={i}").event(i)))
    assert join.state_size <= 100 and join.counters.evicted == 900
    out.extend(join.flush())
    assert len(out) == 1000 and sum(1 for i in out if i["badgateway"].get("evicted")) == 900


def serialise(incidents: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(i) for i in incidents)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CASES), st.randoms(use_true_random=False))
def test_any_arrival_order_within_lateness_gives_identical_output(case: Case, rnd: random.Random) -> None:
    order = list(range(len(case.messages)))
    rnd.shuffle(order)
    # lateness covers the whole case: every order is "within the bound"
    case_ = Case(case.name, case.messages, case.expect, case.topology, JoinSettings(allowed_lateness_ms=120_000))
    expected, _ = run(case_)
    got, _ = run(case_, order)
    assert serialise(got) == serialise(expected)


def test_address_key_spellings() -> None:
    assert address_key("fastcgi://unix:/run/php/a.sock:") == "unix:/run/php/a.sock"
    assert address_key("/run/php/a.sock") == "unix:/run/php/a.sock"
    assert address_key("9000") == address_key("localhost:9000") == "127.0.0.1:9000"
    assert address_key("fastcgi://127.0.0.1:9000") == "127.0.0.1:9000"


def test_a_host_with_a_skewed_clock_is_neither_late_nor_holding_others_forever() -> None:
    # web-2's clock is 10 minutes behind web-1's; lines arrive as a live system sends them. Per-stream
    # watermarks (no event-time idleness: the driver reports progress) keep both hosts correct
    join = DiagnosisJoin(CONFIGS, JoinSettings())
    join.watermarks.event_time_idle = False
    skew = -600.0
    msgs = []
    for k in range(30):
        t = float(k)
        msgs.append(Message("access.log", t, access(t, f"/a?id={k}", status=200).fields))
        msgs.append(Message("access-2.log", t + skew, access(t, f"/b?id={k}", status=200).fields, host="web-2"))
    msgs.append(Message("access.log", 10.0, access(10.0, "/slow.php?id=x1").fields))
    msgs.append(
        Message(
            "error.log",
            10.0,
            error(10.0, "/slow.php?id=x1", *RESET, SLOW_UP, "reading response header from upstream").fields,
        )
    )
    msgs.append(Message("access-2.log", 10.0 + skew, access(10.0, "/crash.php?id=x2").fields, host="web-2"))
    msgs.append(
        Message(
            "error-2.log",
            10.0 + skew,
            error(10.0, "/crash.php?id=x2", *RESET, SLOW_UP, "reading response header from upstream").fields,
            host="web-2",
        )
    )
    msgs.append(
        Message(
            "php-fpm-2.log",
            10.0 + skew,
            {"kind": "exited_signal", "pool": "slow", "signal": 11, "child_pid": 3},
            host="web-2",
        )
    )
    msgs.append(Message("php-fpm.log", 0.0, {"kind": "child_started", "pool": "www", "child_pid": 4}))
    msgs.sort(key=lambda m: m.at_s - skew if m.host == "web-2" else m.at_s)  # arrival: by each host's own clock
    out: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        out += join.process(m.event(i))
    out += join.flush()
    assert sorted((i["host"]["name"], i["badgateway"]["cause"]) for i in out) == [
        ("web-1", "upstream_reset"),
        ("web-2", "child_crash"),
    ]
    assert join.counters.late_records == 0
