"""``badgateway run`` end to end on the real broker: logs produced to topics → the service (a subprocess) →
the incidents topic, compared with what ``badgateway replay`` gives on the same lines.

No incident lost: across kill -9 and restart, a broker stop/start, and a group member leaving mid-stream;
duplicates only ever repeat an incident with the same ``event.id``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from processor.io.sinks import MemorySink
from processor.runners.replay import plan_inputs, replay
from processor.runners.service import pipeline_factory
from processor.runners.service_config import load_config
from tests.behaviour.drivers.lab_kafka import (
    INPUTS,
    end_offsets,
    lab_lines,
    produce_lines,
    replay_expected,
    service_config,
)
from tests.fixtures.kafka import KafkaBroker, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
HOSTS = ("web-1", "web-2", "web-3")  # murmur2: web-2 → partition 0, web-1 and web-3 → partition 1 of 2
START = datetime(2026, 11, 24, 5, 0, 0, tzinfo=UTC)
TYPES = ("access", "error", "fpm")
CAUSES = ("fpm_timeout", "child_crash", "nginx_timeout", "socket_permission", "pool_saturated", "too_big_header")
GARBAGE = "this is not an access log line"
# kafka.client: the reference (pure Python) and the fast path (librdkafka) pass the same suite
CLIENTS = ["kafka-python", "confluent"]

# --- the logs: three hosts, healthy traffic, one failure every 10 s with the lines each cause really leaves ---


def _access(t: datetime, client: str, uri: str, status: int) -> str:
    return (
        f'{client} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET {uri} HTTP/1.1" {status} 157 "-" '
        '"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0"'
    )


def _error(t: datetime, level: str, cid: int, message: str, client: str, uri: str) -> str:
    return (
        f"{t:%Y/%m/%d %H:%M:%S} [{level}] 12#12: *{cid} {message}, client: {client}, server: shop, "
        f'request: "GET {uri} HTTP/1.1", upstream: "fastcgi://unix:/run/php/www.sock:", host: "shop.example"'
    )


def _fpm(t: datetime, level: str, message: str) -> str:
    return f"[{t:%d-%b-%Y %H:%M:%S}] {level}: {message}"


def _failure(cause: str, t: datetime, n: int, client: str) -> list[tuple[datetime, str, str]]:
    uri = f"/p{n}.php?id={n}"
    recv = "recv() failed (104: Connection reset by peer) while reading response header from upstream"
    out = [
        (
            t + timedelta(seconds=1),
            "access",
            _access(t + timedelta(seconds=1), client, uri, 504 if cause == "nginx_timeout" else 502),
        )
    ]
    if cause == "fpm_timeout":
        out += [
            (t, "error", _error(t, "error", n, recv, client, uri)),
            (
                t,
                "fpm",
                _fpm(
                    t,
                    "WARNING",
                    f"[pool www] child {n}, script '/var/www/p{n}.php' (request: "
                    f'"GET {uri}") execution timed out (30.012 sec), terminating',
                ),
            ),
        ]
    elif cause == "child_crash":
        out += [
            (t, "error", _error(t, "error", n, recv, client, uri)),
            (
                t,
                "fpm",
                _fpm(
                    t,
                    "WARNING",
                    f"[pool www] child {n} exited on signal 11 (SIGSEGV - core dumped) after 3.78 seconds from start",
                ),
            ),
        ]
    elif cause == "nginx_timeout":
        out += [
            (
                t,
                "error",
                _error(
                    t,
                    "error",
                    n,
                    "upstream timed out (110: Connection timed out) while reading response header from upstream",
                    client,
                    uri,
                ),
            )
        ]
    elif cause == "socket_permission":
        out += [
            (
                t,
                "error",
                _error(
                    t,
                    "crit",
                    n,
                    "connect() to unix:/run/php/www.sock failed (13: Permission denied) while connecting to upstream",
                    client,
                    uri,
                ),
            )
        ]
    elif cause == "pool_saturated":
        out += [
            (
                t,
                "error",
                _error(
                    t,
                    "error",
                    n,
                    "connect() to unix:/run/php/www.sock failed (11: Resource "
                    "temporarily unavailable) while connecting to upstream",
                    client,
                    uri,
                ),
            ),
            (
                t,
                "fpm",
                _fpm(t, "WARNING", "[pool www] server reached pm.max_children setting (5), consider raising it"),
            ),
        ]
    else:
        out += [
            (
                t,
                "error",
                _error(
                    t,
                    "error",
                    n,
                    "upstream sent too big header while reading response header from upstream",
                    client,
                    uri,
                ),
            )
        ]
    return out


Logs = list[tuple[str, str, str]]  # (type, host, line), in the order a shipper would send them


def scenario(seconds: int, seed: int = 7) -> Logs:
    """Every host's lines merged in time order, as shippers tailing live logs send them."""
    rng = random.Random(seed)
    items: list[tuple[datetime, str, str, str]] = []
    for hi, host in enumerate(HOSTS):
        items += [
            (START, "fpm", host, _fpm(START, "NOTICE", "fpm is running, pid 1")),
            (START, "fpm", host, _fpm(START, "NOTICE", "ready to handle connections")),
        ]
        for s in range(seconds):
            t = START + timedelta(seconds=s)
            for _ in range(2):
                client = f"10.{hi}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
                items.append((t, "access", host, _access(t, client, rng.choice(["/", "/index.php", "/cart"]), 200)))
            if s % 10 == 5:
                n = hi * 10_000 + s
                failure = _failure(CAUSES[(s // 10 + hi) % len(CAUSES)], t, n, f"10.{hi}.0.{s % 250 + 1}")
                items += [(ts, kind, host, line) for ts, kind, line in failure]
            if s == seconds // 2:
                items.append((t, "access", host, GARBAGE))  # a dead letter in the middle of the stream
    return [(kind, host, line) for _, kind, host, line in sorted(items, key=lambda x: x[0])]  # stable sort


def split(logs: Logs, at: float) -> tuple[Logs, Logs]:
    cut = int(len(logs) * at)
    return logs[:cut], logs[cut:]


# --- the harness ----------------------------------------------------------------------------------------------


@dataclass
class Setup:
    broker: KafkaBroker
    topics: dict[str, str]  # access/error/fpm/incidents/dead → topic name
    partitions: int
    config_path: Path
    tmp: Path
    services: list[ServiceProc] = field(default_factory=list)  # killed at teardown if a test failed midway

    def produce(self, logs: Logs, oversized: bool = False, scatter: bool = False, newline: bool = True) -> None:
        """access: raw lines keyed by host (each with a "\n" left on, unless not ``newline``); error: Filebeat
        JSON; fpm: raw lines with a `host` header.

        ``scatter``: as if each log type's shipper used another partitioner — a host's lines land on a
        different partition number in each topic (each host's lines of one type still on one partition, in order).
        """
        p = KafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all", linger_ms=5)
        try:
            for kind, host, line in logs:
                key = host.encode()
                part = (HOSTS.index(host) + TYPES.index(kind)) % self.partitions if scatter else None
                if kind == "access":
                    p.send(self.topics["access"], value=line.encode() + b"\n" * newline, key=key, partition=part)
                elif kind == "error":
                    doc = {"message": line, "host": {"name": host}, "log": {"file": {"path": "/var/log/error.log"}}}
                    p.send(self.topics["error"], value=json.dumps(doc).encode(), key=key, partition=part)
                else:
                    p.send(self.topics["fpm"], value=line.encode(), key=key, headers=[("host", key)], partition=part)
            if oversized:
                p.send(self.topics["access"], value=b"x" * 5000, key=b"web-2", headers=[("shipper", b"test")])
            p.flush()
        finally:
            p.close()

    def end_offsets(self) -> dict[TopicPartition, int]:
        c = KafkaConsumer(bootstrap_servers=self.broker.bootstrap)
        try:
            tps = [TopicPartition(self.topics[k], p) for k in TYPES for p in range(self.partitions)]
            return dict(c.end_offsets(tps))
        finally:
            c.close()

    def read(self, kind: str, isolation: str = "read_uncommitted") -> list[dict[str, Any]]:
        """Every record of an output topic, to its end (the last stable offset with read_committed)."""
        c = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        try:
            tps = [TopicPartition(self.topics[kind], 0)]  # the fixture creates output topics with one partition
            c.assign(tps)
            c.seek_to_beginning(*tps)
            ends = c.end_offsets(tps)
            out: list[dict[str, Any]] = []
            deadline = time.monotonic() + 30
            # transaction markers take offsets too: read_committed stops at the end without a record for them
            while any(c.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, "output topic not readable to its end"
                for batch in c.poll(timeout_ms=500).values():
                    out.extend({**json.loads(r.value), "_key": r.key, "_headers": r.headers} for r in batch)
            return out
        finally:
            c.close()


class ServiceProc:
    """One `badgateway run` process; its metrics endpoint tells how far it got."""

    def __init__(self, setup: Setup, name: str, *sets: str) -> None:
        setup.services.append(self)
        self.port = free_port()
        self.log_path = setup.tmp / f"{name}.log"
        args = [
            sys.executable,
            "-m",
            "processor.cli",
            "run",
            "--config",
            str(setup.config_path),
            "--set",
            f"metrics.port={self.port}",
        ]
        for item in sets:
            args += ["--set", item]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=log)

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
        out: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out.setdefault(sample.name, []).append((sample.labels, sample.value))
        return out

    def positions(self) -> dict[TopicPartition, int]:
        try:
            samples = self.metrics().get("badgateway_consumer_position", [])
        except OSError:
            return {}
        return {TopicPartition(lab["topic"], int(lab["partition"])): int(v) for lab, v in samples}

    def wait_caught_up(self, ends: dict[TopicPartition, int], timeout_s: float = 60, only: int | None = None) -> None:
        """Until the service has processed every record up to `ends` (of the partitions it owns, if `only`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc.poll() is None, f"service exited early:\n{self.log_tail()}"
            pos = self.positions()
            owned = [tp for tp in ends if tp in pos] if only is not None else list(ends)
            if (only is None or len(owned) >= only) and all(pos.get(tp, -1) >= ends[tp] for tp in owned):
                return
            assert time.monotonic() < deadline, f"not caught up: {pos} vs {ends}\n{self.log_tail()}"
            time.sleep(0.2)

    def terminate(self, timeout_s: float = 60) -> dict[str, Any]:
        """SIGTERM → exit 0; returns the final `service.stopped` log line."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout_s) == 0, self.log_tail()
        return self.final_line()

    def cpu_s(self) -> float:
        """CPU seconds the process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def final_line(self) -> dict[str, Any]:
        for line in reversed(self.log_path.read_text().splitlines()):
            if '"service.stopped"' in line:
                final = dict(json.loads(line))
                # records in = parsed + dead-lettered (+ records dropped with a rebuilt pipeline, read again)
                assert (
                    final["records_in"]
                    == final["lines_parsed"]
                    + final["lines_dead_lettered"]
                    + final["envelope_dead_letters"]
                    + final["replayed_after_rebuild"]
                ), final
                return final
        raise AssertionError(f"no service.stopped line\n{self.log_tail()}")

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    """The service's Kafka client library (``kafka.client``): every service test runs with each."""
    return str(request.param)


@pytest.fixture
def setup(kafka_broker: KafkaBroker, tmp_path: Path, request: pytest.FixtureRequest, client: str) -> Iterator[Setup]:
    kafka_broker.start()
    partitions = getattr(request, "param", 1)
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"svc-{k}-{tag}" for k in (*TYPES, "incidents", "dead")}
    for kind in TYPES:
        kafka_broker.create_topic(topics[kind], partitions)
    for kind in ("incidents", "dead"):
        kafka_broker.create_topic(topics[kind], 1)
    config = tmp_path / "badgateway.toml"
    config.write_text(f"""
[kafka]
client = "{client}"
bootstrap_servers = "{kafka_broker.bootstrap}"
group_id = "svc-{tag}"
session_timeout_s = 6.0
connect_backoff_max_s = 2.0

[[inputs]]
topic = "{topics["access"]}"
type = "nginx_access"
envelope = "raw"

[[inputs]]
topic = "{topics["error"]}"
type = "nginx_error"
envelope = "filebeat"

[[inputs]]
topic = "{topics["fpm"]}"
type = "php_fpm"
host_from = "header:host"

[outputs]
incidents_topic = "{topics["incidents"]}"
dead_letter_topic = "{topics["dead"]}"

[diagnosis]
allowed_lateness_s = 5.0
idle_timeout_s = 30.0

[delivery]
commit_interval_s = 0.5
max_record_bytes = 4096
""")
    made = Setup(kafka_broker, topics, partitions, config, tmp_path)
    yield made
    for svc in made.services:
        if svc.proc.poll() is None:
            svc.kill()
    if kafka_broker.is_running:
        kafka_broker.delete_topics(list(topics.values()))


def expected_incidents(setup: Setup, logs: Logs) -> dict[str, tuple[Any, ...]]:
    """What `badgateway replay` says about the same lines (one file per host and type), same diagnosis settings."""
    root = setup.tmp / "replay"
    files: dict[Path, list[str]] = {}
    for kind, host, line in logs:
        files.setdefault(root / host / f"{kind}.log", []).append(line + "\n")
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))
    pipeline = pipeline_factory(load_config(str(setup.config_path), environ={}))[0]()
    plans = plan_inputs(pipeline, [str(root)], host_pattern=r"(?P<host>web-\d+)")
    sink = MemorySink()
    replay(pipeline, plans, sink)
    out = {inc["event"]["id"]: project(inc) for inc in sink.incidents}
    assert len(out) == len(sink.incidents)
    return out


def project(inc: dict[str, Any]) -> tuple[Any, ...]:
    return (
        inc["event"]["id"],
        inc["badgateway"]["cause"],
        (inc.get("php_fpm") or {}).get("pool"),
        inc["http"]["response"]["status_code"],
        inc["url"]["original"],
        inc["host"]["name"],
    )


def check(
    setup: Setup, expected: dict[str, tuple[Any, ...]], *, exact_once: bool, isolation: str = "read_uncommitted"
) -> list[dict[str, Any]]:
    """Every expected incident is on the topic; copies of one incident are the same incident."""
    got = setup.read("incidents", isolation)
    by_id: dict[str, set[tuple[Any, ...]]] = {}
    for inc in got:
        by_id.setdefault(inc["event"]["id"], set()).add(project(inc))
        assert inc["_key"] == inc["host"]["name"].encode()
    assert set(by_id) == set(expected), (sorted(set(expected) - set(by_id)), sorted(set(by_id) - set(expected)))
    for event_id, versions in by_id.items():
        assert versions == {expected[event_id]}, (event_id, versions, expected[event_id])
    if exact_once:
        assert len(got) == len(expected)
    return got


# --- the tests ------------------------------------------------------------------------------------------------


def test_end_to_end_matches_replay_and_sigterm_commits_everything(setup: Setup) -> None:
    logs = scenario(120)
    expected = expected_incidents(setup, logs)
    causes = {v[1] for v in expected.values()}
    assert set(CAUSES) <= causes, causes  # the join across the three topics really happened in replay
    svc = ServiceProc(setup, "svc")
    setup.produce(logs, oversized=True)
    ends = setup.end_offsets()
    svc.wait_caught_up(ends)
    metrics = svc.metrics()
    final = svc.terminate()
    check(setup, expected, exact_once=True)
    # the metrics endpoint: records in by topic and type, dead letters by stage (incidents by cause and pool are
    # counted when windows close; the last ones close at SIGTERM, so only the closed part is compared)
    records_in = {(lab["topic"], lab["type"]): v for lab, v in metrics["badgateway_records_in_total"]}
    assert records_in == {
        (setup.topics["access"], "nginx_access"): ends[TopicPartition(setup.topics["access"], 0)],
        (setup.topics["error"], "nginx_error"): ends[TopicPartition(setup.topics["error"], 0)],
        (setup.topics["fpm"], "php_fpm"): ends[TopicPartition(setup.topics["fpm"], 0)],
    }
    by_cause: dict[tuple[str, str], int] = {}
    for v in expected.values():
        by_cause[(v[1], v[2] or "")] = by_cause.get((v[1], v[2] or ""), 0) + 1
    for lab, value in metrics["badgateway_incidents_total"]:
        assert 0 < value <= by_cause[(lab["cause"], lab["pool"])]
    assert {lab["stage"]: v for lab, v in metrics["badgateway_dead_lettered_total"]} == {
        "envelope": 1,
        "parse": len(HOSTS),
    }
    assert {name for name in metrics} >= {
        "badgateway_join_state_size",
        "badgateway_watermark_lag_seconds",
        "badgateway_consumer_lag",
        "badgateway_last_commit_age_seconds",
    }
    # records in = parsed + dead-lettered (one garbage line per host, one oversized record)
    produced = sum(ends.values())
    assert final["records_in"] == produced
    assert final["lines_parsed"] + final["lines_dead_lettered"] + final["envelope_dead_letters"] == produced
    assert (final["lines_dead_lettered"], final["envelope_dead_letters"]) == (len(HOSTS), 1)
    # the access lines (each with its "\n" left on) were read a poll at a time as blocks (Pipeline.feed_block)
    assert final["block_records"] > 0
    dead = setup.read("dead")
    assert len(dead) == len(HOSTS) + 1
    big = next(d for d in dead if d["_headers"])
    assert "above delivery.max_record_bytes" in big["reason"]
    assert big["source"]["topic"] == setup.topics["access"] and big["headers"] == {"shipper": "test"}
    assert {d["raw"] for d in dead if not d["_headers"]} == {GARBAGE}
    # after SIGTERM every offset is committed: a new member of the group has nothing left to read
    c = KafkaConsumer(
        bootstrap_servers=setup.broker.bootstrap,
        group_id=load_config(str(setup.config_path), environ={}).kafka.group_id,
        enable_auto_commit=False,
    )
    try:
        assert {tp: c.committed(tp) for tp in ends} == ends
    finally:
        c.close()


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_kill_9_mid_stream_loses_nothing(setup: Setup, exactly_once: bool) -> None:
    # 240 s of logs, killed after 180 s: PHP-FPM evidence is kept 60 s for `max_children` look-backs, so commits
    # trail the stream by about that much and the restart resumes well inside it
    logs = scenario(240, seed=11)
    expected = expected_incidents(setup, logs)
    first, rest = split(logs, 0.75)
    mode = f"delivery.exactly_once={str(exactly_once).lower()}"
    isolation = "read_committed" if exactly_once else "read_uncommitted"
    svc = ServiceProc(setup, "before-kill", mode)
    setup.produce(first, newline=False)
    svc.wait_caught_up(setup.end_offsets())
    time.sleep(1.0)  # a commit or two
    svc.kill()
    before = len(setup.read("incidents", isolation))
    setup.produce(rest, newline=False)
    svc = ServiceProc(setup, "after-kill", mode)
    ends = setup.end_offsets()
    svc.wait_caught_up(ends)
    final = svc.terminate()
    # exactly-once: the transactions hide what the killed process emitted after its last commit — no duplicate
    got = check(setup, expected, exact_once=exactly_once, isolation=isolation)
    assert 0 < before < len(expected) <= len(got)
    print(
        f"kill -9 ({isolation}): {before} incidents before the kill, {len(got)} on the topic, "
        f"{len(expected)} expected; restart read {final['records_in']} of {sum(ends.values())} records"
    )
    # the restart resumed from the commits made before the kill, not from the beginning
    assert 0 < final["records_in"] < sum(ends.values())
    assert final["block_records"] > 0  # bare access lines: a poll at a time, as blocks


def test_broker_stop_and_start_mid_stream_loses_nothing(setup: Setup) -> None:
    logs = scenario(120, seed=13)
    expected = expected_incidents(setup, logs)
    first, rest = split(logs, 0.5)
    svc = ServiceProc(setup, "svc")
    setup.produce(first)
    svc.wait_caught_up(setup.end_offsets())
    try:
        setup.broker.stop()
        cpu_before, wall_before = svc.cpu_s(), time.monotonic()
        time.sleep(6.0)
        busy = (svc.cpu_s() - cpu_before) / (time.monotonic() - wall_before)
        assert svc.proc.poll() is None, "the service must wait for the broker, not exit"
        assert busy < 0.3, f"the service spins while the broker is away ({busy:.0%} of a core)"
    finally:
        setup.broker.start()
    setup.produce(rest)
    svc.wait_caught_up(setup.end_offsets(), timeout_s=120)
    svc.terminate()
    check(setup, expected, exact_once=False)


@pytest.mark.parametrize("setup", [2], indirect=True)
def test_two_members_one_leaves_mid_stream_loses_nothing(setup: Setup) -> None:
    logs = scenario(120, seed=17)
    expected = expected_incidents(setup, logs)
    first, rest = split(logs, 0.5)
    a = ServiceProc(setup, "member-a", "delivery.on_stop=handoff")
    b = ServiceProc(setup, "member-b")
    setup.produce(first)
    ends = setup.end_offsets()
    a.wait_caught_up(ends, only=len(TYPES))  # each member owns one partition of each topic
    b.wait_caught_up(ends, only=len(TYPES))
    a.terminate()  # leaves the group; b takes over a's partitions from their committed offsets
    setup.produce(rest)
    ends = setup.end_offsets()
    b.wait_caught_up(ends, timeout_s=90)
    assert set(b.positions()) == set(ends)  # b owns every partition now
    b.terminate()
    check(setup, expected, exact_once=False)


def test_broker_unreachable_at_start_is_logged_and_retried(setup: Setup) -> None:
    logs = scenario(40, seed=19)
    expected = expected_incidents(setup, logs)
    setup.broker.stop()
    try:
        svc = ServiceProc(setup, "svc")
        deadline = time.monotonic() + 30
        while svc.log_path.read_text().count('"kafka.unreachable"') < 2:
            assert time.monotonic() < deadline and svc.proc.poll() is None, svc.log_tail()
            time.sleep(0.2)
        unreachable = [
            json.loads(line) for line in svc.log_path.read_text().splitlines() if '"kafka.unreachable"' in line
        ]
        assert [u["retry_in_s"] for u in unreachable[:2]] == [0.5, 1.0]  # exponential backoff, no busy loop
        assert "Unable to bootstrap" in unreachable[0]["error"]
    finally:
        setup.broker.start()
    setup.produce(logs)
    svc.wait_caught_up(setup.end_offsets(), timeout_s=90)
    svc.terminate()
    check(setup, expected, exact_once=True)


def test_inputs_not_copartitioned_are_refused(setup: Setup) -> None:
    wide = setup.broker.create_topic(f"svc-wide-{uuid.uuid4().hex[:8]}", 3)
    svc = ServiceProc(setup, "svc", f"inputs.1.topic={wide}")
    assert svc.proc.wait(60) == 2
    message = svc.log_path.read_text()
    assert (
        f"inputs are not co-partitioned ({setup.topics['access']} has 1, {setup.topics['fpm']} has 1, "
        f"{wide} has 3)" in message
    )
    assert "same number of partitions, keyed by host" in message
    setup.broker.delete_topics([wide])


@pytest.mark.parametrize("setup", [2], indirect=True)
def test_a_host_on_two_partition_numbers_is_reported(setup: Setup) -> None:
    # equal partition counts, but two shippers with different partitioners put web-1 on different partitions
    logs = scenario(20, seed=23)
    svc = ServiceProc(setup, "svc")
    p = KafkaProducer(bootstrap_servers=setup.broker.bootstrap)
    try:
        for kind, host, line in logs:
            if host == "web-1" and kind in ("access", "error"):
                value = line.encode() if kind == "access" else json.dumps({"message": line, "host": host}).encode()
                p.send(setup.topics[kind], value=value, key=host.encode(), partition=0 if kind == "access" else 1)
        p.flush()
    finally:
        p.close()
    svc.wait_caught_up(setup.end_offsets())
    svc.terminate()
    warnings = [
        json.loads(line) for line in svc.log_path.read_text().splitlines() if '"inputs.not_copartitioned"' in line
    ]
    assert [(w["host"], sorted(w["partitions"])) for w in warnings] == [("web-1", [0, 1])]


@pytest.mark.parametrize("setup", [2], indirect=True)
def test_repartition_joins_inputs_that_are_not_copartitioned(setup: Setup) -> None:
    # every host's access, error and PHP-FPM lines on different partition numbers, two members: only the
    # repartition stage (re-key by host into one internal topic) brings each host's lines to one member
    logs = scenario(120, seed=29)
    expected = expected_incidents(setup, logs)
    first, rest = split(logs, 0.5)
    a = ServiceProc(setup, "member-a", "kafka.repartition=true", "delivery.on_stop=handoff")
    b = ServiceProc(setup, "member-b", "kafka.repartition=true")
    setup.produce(first, scatter=True)
    time.sleep(3.0)
    a.terminate()
    setup.produce(rest, scatter=True)
    ends = setup.end_offsets()
    b.wait_caught_up(ends, timeout_s=90, only=len(ends))
    internal = f"{load_config(str(setup.config_path), environ={}).kafka.group_id}-repartition"
    c = KafkaConsumer(bootstrap_servers=setup.broker.bootstrap)
    try:
        internal_ends = c.end_offsets([TopicPartition(internal, p) for p in range(setup.partitions)])
    finally:
        c.close()
    b.wait_caught_up(internal_ends, timeout_s=60)  # stage 2 has joined what stage 1 re-keyed last
    b.terminate()
    check(setup, expected, exact_once=False)


def test_a_dead_letter_above_the_brokers_limit_is_cut_not_retried_forever(setup: Setup) -> None:
    # the dead-letter topic takes 4,500 bytes at most; an unparseable 3,000-byte line makes a dead letter of
    # ~6,000 (raw + value): refused, it would be re-read and refused again forever. It is cut to fit instead.
    dead = setup.broker.create_topic(f"svc-dead-small-{uuid.uuid4().hex[:8]}", 1, {"max.message.bytes": "4500"})
    setup.topics["dead-default"], setup.topics["dead"] = setup.topics["dead"], dead  # (both deleted at teardown)
    logs = scenario(20, seed=31)
    svc = ServiceProc(setup, "svc", f"outputs.dead_letter_topic={dead}", "delivery.max_dead_letter_bytes=4096")
    setup.produce(logs)
    p = KafkaProducer(bootstrap_servers=setup.broker.bootstrap)
    try:
        p.send(setup.topics["access"], value=b"garbage " * 375, key=b"web-1")
        p.flush()
    finally:
        p.close()
    svc.wait_caught_up(setup.end_offsets())
    final = svc.terminate()
    assert final["rebuilds"] == 0, svc.log_tail()  # no delivery failure, no re-read
    letters = setup.read("dead")
    big = [d for d in letters if d.get("truncated")]
    assert len(big) == 1 and set(big[0]["truncated"]) >= {"raw", "value"}
    assert big[0]["truncated"]["raw"] == 3000 and big[0]["raw"].startswith("garbage garbage")
    assert big[0]["raw"].endswith("…") and big[0]["reason"]
    assert len(letters) == len(HOSTS) + 1  # the scenario's garbage line per host, and the big one


LAB = REPO / "examples" / "lab"


@pytest.mark.skipif(not (LAB / "manifest.json").exists(), reason="the lab's recorded run is not in examples/lab")
@pytest.mark.parametrize("client", CLIENTS)
def test_lab_recording_gives_what_replay_gives(kafka_broker: KafkaBroker, tmp_path: Path, client: str) -> None:
    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    topics = [kafka_broker.create_topic(f"lab-{i}-{tag}") for i in range(len(INPUTS))]
    outputs = {k: kafka_broker.create_topic(f"lab-{k}-{tag}") for k in ("incidents", "dead", "events")}
    config = service_config(tmp_path / "badgateway.toml", kafka_broker.bootstrap, client, f"lab-{tag}", topics, outputs)
    # what replay says about the same files
    sink = replay_expected(config, LAB / "logs")
    expected = {inc["event"]["id"]: project(inc) for inc in sink.incidents}
    assert {"fpm_down", "fpm_timeout", "socket_permission", "pool_saturated"} <= {v[1] for v in expected.values()}

    setup = Setup(kafka_broker, outputs, 1, config, tmp_path)
    svc = ServiceProc(setup, "lab")
    try:
        produce_lines(kafka_broker.bootstrap, lab_lines(LAB / "logs", topics))
        svc.wait_caught_up(end_offsets(kafka_broker.bootstrap, topics, 1))
        final = svc.terminate()
    finally:
        if svc.proc.poll() is None:
            svc.kill()
    check(setup, expected, exact_once=True)
    # the events topic: one ECS document per parsed entry (multi-line entries are one event), keyed by host
    events = setup.read("events")
    datasets = {e["event"]["dataset"] for e in events}
    assert datasets == {"nginx.access", "nginx.error", "php_fpm.log", "php_fpm.slowlog"}
    assert {e["_key"] for e in events} == {b"lab"} and {e["host"]["name"] for e in events} == {"lab"}
    assert len(events) <= final["lines_parsed"]
    assert sum(1 for e in events if e["event"]["dataset"] == "nginx.access") == sum(
        1
        for p, kind, _ in INPUTS
        if kind == "nginx_access"
        for line in (LAB / "logs" / p).read_text().splitlines()
        if line
    )


@pytest.mark.slow
def test_many_kill_9_at_random_moments_lose_nothing(setup: Setup) -> None:
    """The long crash profile (issue 7): 20 kill -9 at random moments while the logs flow."""
    rnd = random.Random(20261124)
    logs = scenario(240, seed=17)
    expected = expected_incidents(setup, logs)
    chunks = [logs]
    for _ in range(4):  # the records keep arriving in slices between the kills
        chunks = [part for c in chunks for part in split(c, 0.5)]
    kills = 0
    for i, chunk in enumerate(chunks + [None] * (20 - len(chunks))):
        if chunk is not None:
            setup.produce(chunk)
        svc = ServiceProc(setup, f"crash-{i}")
        time.sleep(rnd.uniform(0.5, 4.0))
        svc.kill()
        kills += 1
    svc = ServiceProc(setup, "final")
    svc.wait_caught_up(setup.end_offsets())
    svc.terminate()
    got = check(setup, expected, exact_once=False)  # every expected incident; copies identical
    print(
        f"\n{kills} kill -9 survived: {len(expected)} incidents expected, {len(got)} on the topic "
        f"({len(got) - len(expected)} duplicates, all sharing their event.id), 0 lost"
    )
