"""``follow`` as a sidecar: incidents to a real Kafka topic, stopped and restarted on its state file —
every incident once, every line read once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer  # type: ignore[import-untyped]

from processor.cli import main

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "examples" / "lab"
CONF_ARGS = [
    "--nginx-conf",
    str(LAB / "conf" / "nginx.conf"),
    *[a for c in sorted((LAB / "conf").glob("php-fpm*.conf")) for a in ("--fpm-conf", str(c))],
]
LOGS = ["error.log", "access.log", "access_combined.log", "php-fpm.log", "php-fpm-legacy.log", "php-fpm-reports.log"]


def _follow(live: Path, tmp: Path, bootstrap: str, topic: str, events: Path, client: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "follow",
            str(live / "*.log"),
            "--kafka-bootstrap",
            bootstrap,
            "--kafka-topic",
            topic,
            "--events",
            str(events),
            "--kafka-client",
            client,
            "--state-file",
            str(tmp / "state.json"),
            "--poll-interval",
            "0.05",
            "--allowed-lateness",
            "60",
            *CONF_ARGS,
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_follow_to_kafka_across_a_restart(kafka_broker: Any, kafka_topics: Any, tmp_path: Path, client: str) -> None:
    topic = kafka_topics()
    live = tmp_path / "live"
    live.mkdir()
    texts = {name: (LAB / "logs" / name).read_text() for name in LOGS}
    # run 1 sees every file but the access logs; run 2 (restarted on the state file) gets the rest
    for name in LOGS:
        (live / name).write_text("" if name.startswith("access") else texts[name])
    first = _follow(live, tmp_path, kafka_broker.bootstrap, topic, tmp_path / "events1.jsonl", client)
    time.sleep(3.0)
    _stop(first)
    for name in LOGS:
        if name.startswith("access"):
            (live / name).write_text(texts[name])
    second = _follow(live, tmp_path, kafka_broker.bootstrap, topic, tmp_path / "events2.jsonl", client)
    time.sleep(3.0)
    _stop(second)

    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    got = [json.loads(r.value) for r in consumer]
    consumer.close()
    events = sum(len((tmp_path / f"events{i}.jsonl").read_text().splitlines()) for i in (1, 2))
    expected_events = tmp_path / "replay-events.jsonl"
    assert (
        main(
            [
                "replay",
                "-q",
                "--no-progress",
                "-o",
                str(tmp_path / "replay.jsonl"),
                "--events",
                str(expected_events),
                *CONF_ARGS,
                *[str(LAB / "logs" / n) for n in LOGS],
            ]
        )
        == 0
    )
    assert events == len(expected_events.read_text().splitlines())  # nothing read twice, nothing skipped
    # the error lines whose access lines came only after the restart were emitted by run 1 (its clean stop
    # closes every window); what matters: every failure is on the topic, each once
    ids = [i["event"]["id"] for i in got]
    assert len(ids) == len(set(ids))
    replayed = [json.loads(line) for line in (tmp_path / "replay.jsonl").read_text().splitlines()]
    failing = {i["url"]["original"] for i in replayed}
    assert failing <= {i["url"]["original"] for i in got}


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_an_incident_the_broker_refuses_stops_follow_before_its_offsets_are_saved(
    kafka_broker: Any, kafka_topics: Any, tmp_path: Path, client: str
) -> None:
    # every incident (~2 KB) is above the topic's max.message.bytes: none is delivered, so none may be forgotten
    topic = kafka_topics(configs={"max.message.bytes": "600"})
    live = tmp_path / "live"
    live.mkdir()
    for name in LOGS:
        (live / name).write_text((LAB / "logs" / name).read_text())
    proc = _follow(live, tmp_path, kafka_broker.bootstrap, topic, tmp_path / "events.jsonl", client)
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert f"an incident was not delivered to {topic}" in err.decode(), err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    state = tmp_path / "state.json"
    if state.exists():  # a periodic save before the first incident closed; never the end of the files
        saved = json.loads(state.read_text())["files"]
        total = sum((live / n).stat().st_size for n in LOGS)
        assert sum(v["offset"] for v in saved.values()) < total, saved
