"""A Kafka client installed as a package is found through the ``badgateway.kafka_clients`` entry point group:
``kafka.client = "<name>"`` is accepted by the service's config and ``backend()`` loads it, with no launcher."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.core.errors import UserConfigError
from processor.io.kafka.client import backend, backend_names
from processor.io.kafka.settings import KafkaSection
from processor.runners.service_config import load_config

BACKEND = """
from processor.io.kafka import python_client

def load():
    return python_client  # the built-in kafka-python backend, under another name

def broken():
    raise RuntimeError("no such library")
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    info = site / "my_backend-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "my_backend.py").write_text(textwrap.dedent(BACKEND))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[badgateway.kafka_clients]\nmine = my_backend:load\nbroken = my_backend:broken\n"
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("my_backend", None)


def test_an_installed_backend_is_accepted_and_loaded(installed: None, tmp_path: Path) -> None:
    assert {"mine", "broken"} <= set(backend_names())
    config = tmp_path / "badgateway.toml"
    config.write_text('[kafka]\nclient = "mine"\n[[inputs]]\ntopic = "logs"\n')
    from processor.io.kafka import python_client

    assert backend(load_config(str(config), environ={}).kafka) is python_client


def test_a_backend_that_does_not_load_is_one_located_line(installed: None) -> None:
    with pytest.raises(
        UserConfigError,
        match=r"kafka.client: the backend 'broken' \(my_backend:broken\) did not "
        r"load: RuntimeError: no such library",
    ):
        backend(KafkaSection(client="broken"))


def test_an_unknown_client_names_the_known_ones() -> None:
    with pytest.raises(UserConfigError, match="is not a Kafka client here.*kafka-python, confluent"):
        backend(KafkaSection(client="nope"))
