"""With the broker unreachable, the client libraries' own log lines come out as the service's JSON lines: one
stream on stderr (kafka-python logged plain `ERROR kafka.conn: …` lines between them)."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_every_stderr_line_is_json_with_the_broker_unreachable(tmp_path: Path, client: str) -> None:
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    config = tmp_path / "badgateway.toml"
    config.write_text(
        f'[kafka]\nclient = "{client}"\nbootstrap_servers = ["127.0.0.1:{closed_port()}"]\n'
        'connect_backoff_max_s = 1.0\n[[inputs]]\ntopic = "nginx-access"\ntype = "nginx_access"\n'
        "[metrics]\nport = 0\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGATEWAY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "processor.cli", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    lines = err.splitlines()
    assert len(lines) >= 2
    docs = [json.loads(line) for line in lines]  # a plain line fails here
    assert any(
        d.get("event") in ("kafka.unreachable", "kafka.client_error") or d.get("logger", "").startswith("kafka")
        for d in docs
    ), err[:2000]


def test_a_stdlib_record_is_rendered_by_structlog() -> None:
    from processor.io import log

    stream = io.StringIO()
    saved = sys.stderr
    sys.stderr = stream
    try:
        log.configure(json=True)
        logging.getLogger("kafka.conn").error("Connect attempt to %s returned error %d", "<broker>", 111)
        logging.getLogger("kafka.conn").warning("dropped: below the kafka logger's level")
        log.get_logger().info("service.starting")
    finally:
        sys.stderr = saved
        for handler in list(logging.getLogger().handlers):
            logging.getLogger().removeHandler(handler)
    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert docs[0]["event"] == "Connect attempt to <broker> returned error 111"
    assert docs[0]["logger"] == "kafka.conn" and docs[0]["level"] == "error" and "timestamp" in docs[0]
    assert [d["event"] for d in docs[1:]] == ["service.starting"]


def test_produce_with_the_broker_unreachable_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGATEWAY_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "produce",
            "--bootstrap",
            f"127.0.0.1:{closed_port()}",
            "examples/lab/logs/access.log",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("badgateway: error: kafka (127.0.0.1:"), proc.stderr


def test_produce_refuses_a_topic_mapping_without_a_topic() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "processor.cli", "produce", "--topic", "nginx_access", "examples/lab/logs/access.log"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--topic 'nginx_access': expected TYPE=TOPIC" in proc.stderr
