"""`badgateway run` start-up faults: a busy metrics port, missing output topics, a stop in every state (#20).

The topic tests run against the real broker, once with each client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from processor.io.kafka.python_client import topic_partitions
from processor.io.kafka.settings import KafkaSection
from tests.fixtures.kafka import KafkaBroker, free_port

REPO = Path(__file__).resolve().parents[3]
CLIENTS = ["kafka-python", "confluent"]
GUARD_S = 90  # a hang guard only: every assertion is on behaviour (exit code, lines, topics)


def write_config(
    tmp_path: Path, bootstrap: str, client: str, inputs: str, incidents: str, dead: str, extra: str = ""
) -> Path:
    path = tmp_path / "badgateway.toml"
    path.write_text(f"""
[kafka]
client = "{client}"
bootstrap_servers = "{bootstrap}"
group_id = "start-{uuid.uuid4().hex[:8]}"
connect_backoff_max_s = 1.0

[[inputs]]
topic = "{inputs}"
type = "nginx_access"
envelope = "raw"

[outputs]
incidents_topic = "{incidents}"
dead_letter_topic = "{dead}"
{extra}
""")
    return path


def start(config: Path, *sets: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "processor.cli", "run", "--config", str(config), *sets]
    return subprocess.Popen(
        args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_busy_metrics_port_is_one_line(tmp_path: Path) -> None:
    # OSError: [Errno 98] with a traceback
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, "127.0.0.1:1", "kafka-python", "in", "out", "dead")
        proc = start(config, "--set", f"metrics.port={port}")
        _, err = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"metrics.port {port} on 127.0.0.1: address already in use" in lines[0]


@pytest.mark.parametrize(
    "setting, value",
    [
        ("delivery.stop_timeout_s", "nan"),
        ("delivery.stop_timeout_s", "-1"),
        ("delivery.commit_interval_s", "inf"),
        ("outputs.missing_topics", "maybe"),
    ],
)
def test_bad_start_up_settings_are_one_line(tmp_path: Path, setting: str, value: str) -> None:
    config = write_config(tmp_path, "127.0.0.1:1", "kafka-python", "in", "out", "dead")
    proc = start(config, "--set", f"{setting}={value}", "--set", "metrics.port=0")
    _, err = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert setting in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_missing_output_topic_is_refused_at_start(kafka_broker: KafkaBroker, tmp_path: Path, client: str) -> None:
    # kafka-python blocked in its metadata wait, deaf to SIGTERM; confluent-kafka said nothing for 45 s
    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    inputs = kafka_broker.create_topic(f"start-in-{tag}")
    config = write_config(
        tmp_path,
        kafka_broker.bootstrap,
        client,
        inputs,
        f"start-missing-{tag}",
        f"start-dead-{tag}",
        'missing_topics = "refuse"',
    )  # in [outputs], the last table
    proc = start(config, "--set", "metrics.port=0")
    _, err = proc.communicate(timeout=GUARD_S)
    kafka_broker.delete_topics([inputs])
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("badgateway: error: outputs: topics ") and f"start-missing-{tag}" in last
    assert 'outputs.missing_topics = "create"' in last


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_output_topics_are_created_by_default(kafka_broker: KafkaBroker, tmp_path: Path, client: str) -> None:
    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    inputs = kafka_broker.create_topic(f"start-in-{tag}", 3)
    incidents, dead = f"start-inc-{tag}", f"start-dead-{tag}"
    config = write_config(tmp_path, kafka_broker.bootstrap, client, inputs, incidents, dead)
    proc = start(config, "--set", "metrics.port=0")
    try:
        deadline = time.monotonic() + GUARD_S
        kafka = KafkaSection(bootstrap_servers=(kafka_broker.bootstrap,))
        while len(counts := topic_partitions(kafka, [incidents, dead])) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "output topics not created"
            time.sleep(0.2)
        assert counts == {incidents: 3, dead: 3}  # the inputs' partitions
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=GUARD_S)
        assert proc.returncode == 0, err
        assert '"kafka.topics_created"' in err
    finally:
        if proc.poll() is None:
            proc.kill()
        kafka_broker.delete_topics([inputs, incidents, dead])


@pytest.mark.parametrize("client", CLIENTS)
def test_sigterm_while_waiting_for_a_missing_input_topic(
    kafka_broker: KafkaBroker, tmp_path: Path, client: str
) -> None:
    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    config = write_config(tmp_path, kafka_broker.bootstrap, client, f"start-absent-{tag}", f"i-{tag}", f"d-{tag}")
    proc = start(config, "--set", "metrics.port=0")
    deadline = time.monotonic() + GUARD_S
    err = ""
    assert proc.stderr is not None
    while '"kafka.topics_missing"' not in err:
        assert proc.poll() is None and time.monotonic() < deadline, err
        err += proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=GUARD_S)[1]
    assert proc.returncode == 0, err + rest


def test_the_stop_deadline_ends_a_process_blocked_anywhere() -> None:
    # a client blocked in a wait that never looks at the stop flag: the deadline ends the process anyway
    code = (
        "import time, structlog\n"
        "from processor.cli.run import exit_after\n"
        "exit_after(0.2, structlog.get_logger())\n"
        "time.sleep(3600)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=GUARD_S)
    assert proc.returncode == 1
    assert "service.stop_timeout" in proc.stdout + proc.stderr


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    # the service is stuck retrying a broker that is not there; a second SIGINT must not wait for the deadline
    config = write_config(
        tmp_path,
        f"127.0.0.1:{free_port()}",
        "kafka-python",
        "in",
        "out",
        "dead",
        "\n[delivery]\nstop_timeout_s = 3600\n",
    )
    proc = start(config, "--set", "metrics.port=0", "--set", "kafka.connect_backoff_max_s=3600")
    assert proc.stderr is not None
    line = proc.stderr.readline()  # service.starting: the handlers are in place
    assert "service.starting" in line, line
    blocker = [sys.executable, "-c", "import time; time.sleep(0.5)"]
    subprocess.run(blocker, check=True)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=GUARD_S)
    assert proc.returncode in (0, 1)


@pytest.mark.parametrize("client", CLIENTS)
def test_sigterm_while_a_send_waits_for_a_deleted_topic(kafka_broker: KafkaBroker, tmp_path: Path, client: str) -> None:
    # the incidents topic vanishes after the start: the producer waits for its metadata (kafka-python ignored
    # SIGTERM there and needed SIGKILL); the stop deadline ends the process anyway
    from kafka import KafkaProducer

    kafka_broker.start()
    tag = uuid.uuid4().hex[:8]
    inputs = kafka_broker.create_topic(f"stuck-in-{tag}")
    incidents, dead = kafka_broker.create_topic(f"stuck-inc-{tag}"), kafka_broker.create_topic(f"stuck-dead-{tag}")
    config = write_config(
        tmp_path,
        kafka_broker.bootstrap,
        client,
        inputs,
        incidents,
        dead,
        "\n[diagnosis]\nallowed_lateness_s = 0.0\nidle_timeout_s = 0.5\n"
        "\n[delivery]\ncommit_interval_s = 0.5\nstop_timeout_s = 2.0\n",
    )
    proc = start(config, "--set", "metrics.port=0")
    try:
        assert proc.stderr is not None
        err = ""
        deadline = time.monotonic() + GUARD_S
        while '"service.started"' not in err:
            assert proc.poll() is None and time.monotonic() < deadline, err
            err += proc.stderr.readline()
        kafka_broker.delete_topics([incidents])
        p = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        for i in range(3):
            p.send(inputs, b'10.0.0.1 - - [24/Nov/2026:05:00:0%d +0000] "GET /x%d HTTP/1.1" 502 1 "-" "x"' % (i, i))
        p.flush()
        p.close()
        time.sleep(5)  # the windows close and an incident goes to the deleted topic
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=GUARD_S)
        assert proc.returncode in (0, 1)  # 1: the stop deadline ended it
    finally:
        if proc.poll() is None:
            proc.kill()
        kafka_broker.delete_topics([inputs, dead])
