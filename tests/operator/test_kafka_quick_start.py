"""The README's Kafka quick start, run as written against a broker of its own (scripts/kafka.sh, free ports):
`badgateway produce` the bundled example, `badgateway run --config examples/badgateway.toml`, read the incidents
topic with scripts/read_topic.py — and the incidents are replay's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.kafka import KafkaBroker, fetch_broker_jars

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka

COMMANDS = [
    "scripts/kafka.sh fetch && scripts/kafka.sh start",
    ".venv/bin/badgateway produce --config examples/badgateway.toml examples/lab/logs",
    ".venv/bin/badgateway run --config examples/badgateway.toml &",
    ".venv/bin/python scripts/read_topic.py badgateway-incidents --count 41 --timeout 120",
    "kill %1; scripts/kafka.sh stop",
]


def quick_start() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Kafka quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_shows_these_commands() -> None:
    assert quick_start() == COMMANDS


def as_argv(command: str) -> list[str]:
    """A README command as this interpreter runs it (the README's .venv is the one the suite runs in)."""
    words = command.rstrip(" &").split()
    if words[0] == ".venv/bin/badgateway":
        return [sys.executable, "-m", "processor.cli", *words[1:]]
    assert words[0] == ".venv/bin/python"
    return [sys.executable, *words[1:]]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    # its own broker: the quick start uses the configuration's topic and group names as they are
    fetch_broker_jars()
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_the_quick_start_works_as_written(own_broker: KafkaBroker, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BADGATEWAY_")}
    env.update(
        BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS=own_broker.bootstrap, BADGATEWAY_METRICS_PORT="0", PYTHONPATH=str(REPO)
    )
    produce = subprocess.run(as_argv(COMMANDS[1]), cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert produce.returncode == 0, produce.stderr
    assert re.search(r"sent nginx-access [\d,]+, nginx-error [\d,]+, php-fpm [\d,]+", produce.stderr), produce.stderr
    service_log = tmp_path / "service.log"
    with open(service_log, "wb") as log:
        service = subprocess.Popen(as_argv(COMMANDS[2]), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        read = subprocess.run(as_argv(COMMANDS[3]), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    finally:
        service.send_signal(signal.SIGTERM)  # `kill %1`
        service.wait(timeout=120)
    assert read.returncode == 0, read.stderr + service_log.read_text()[-3000:]
    incidents = [json.loads(line) for line in read.stdout.splitlines()]
    assert len(incidents) == 41
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "processor.cli",
            "replay",
            "-q",
            "examples/lab/logs/access.log",
            "examples/lab/logs/access_combined.log",
            "examples/lab/logs/error.log",
            "examples/lab/logs/php-fpm.log",
            "examples/lab/logs/php-fpm-legacy.log",
            "examples/lab/logs/php-fpm-reports.log",
            "--host",
            "x",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = sorted(
        (json.loads(line)["badgateway"]["cause"], json.loads(line)["url"]["original"])
        for line in replayed.stdout.splitlines()
    )
    assert sorted((i["badgateway"]["cause"], i["url"]["original"]) for i in incidents) == expected
