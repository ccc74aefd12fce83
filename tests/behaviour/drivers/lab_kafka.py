"""The lab recording through the Kafka service: one topic per recorded log (as a shipper per file would do), the
service's configuration for them, the lines produced keyed by host, and what ``replay`` says of the same files
under the same configuration (what the service must give)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import tzinfo
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from processor.configs.knowledge import load_knowledge
from processor.io.sinks import MemorySink, serialise
from processor.pipeline import Output
from processor.pipeline_types import OutputKind
from processor.runners.replay import learn_host_timezones, plan_inputs, replay
from processor.runners.service import pipeline_factory
from processor.runners.service_config import load_config
from tests.behaviour.drivers.lab_logs import FPM_CONFS, LAB

# (recorded log, input type, access log_format): one [[inputs]] table each
INPUTS = [
    ("access.log", "nginx_access", "lab"),
    ("access_combined.log", "nginx_access", "combined"),
    ("error.log", "nginx_error", ""),
    ("php-fpm.log", "php_fpm", ""),
    ("php-fpm-legacy.log", "php_fpm", ""),
    ("php-fpm-reports.log", "php_fpm", ""),
    ("slow.log", "php_fpm_slowlog", ""),
]
OUTPUT_KEYS = {
    "incidents": "incidents_topic",
    "dead": "dead_letter_topic",
    "events": "events_topic",
    "episodes": "episodes_topic",
}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | list | tuple):
        return json.dumps(value)  # a TOML basic string / array of them
    return repr(value)


def _table(name: str, values: Mapping[str, object]) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in values.items()) + "\n"


def service_config(
    path: Path,
    bootstrap: str,
    client: str,
    group: str,
    topics: Sequence[str],
    outputs: Mapping[str, str],
    *,
    kafka: Mapping[str, object] | None = None,
    diagnosis: Mapping[str, object] | None = None,
    delivery: Mapping[str, object] | None = None,
) -> Path:
    """``badgateway.toml`` for the lab's logs on ``topics`` (in ``INPUTS`` order), raw lines, the lab's nginx.conf
    and php-fpm.conf files; ``outputs`` maps incidents / dead / events / episodes to their topics. The other
    keys of a section are added to it (``session_timeout_s`` 6 s and a 0.5 s commit interval unless given)."""
    inputs = "".join(
        _table("[inputs]", {"topic": t, "type": kind, "format": fmt, "envelope": "raw"})
        for t, (_, kind, fmt) in zip(topics, INPUTS, strict=True)
    )
    path.write_text(
        _table(
            "kafka",
            {"client": client, "bootstrap_servers": bootstrap, "group_id": group, "session_timeout_s": 6.0}
            | dict(kafka or {}),
        )
        + inputs
        + _table("outputs", {OUTPUT_KEYS[k]: t for k, t in outputs.items()})
        + _table(
            "diagnosis", {"nginx_conf": str(LAB / "conf" / "nginx.conf"), "fpm_conf": FPM_CONFS} | dict(diagnosis or {})
        )
        + _table("delivery", {"commit_interval_s": 0.5} | dict(delivery or {}))
    )
    return path


def replay_expected(
    config: Path, logs: Path | Mapping[str, Path], *, learned: dict[str, tzinfo] | None = None
) -> MemorySink:
    """What ``replay`` gives for the lab's logs under the service's configuration: ``logs`` holds host ``lab``'s,
    or maps each host to its copy. ``learned``: given, the hosts' zones are learned as ``replay --timezone auto``
    learns them (each from its access log) and put in it."""
    cfg = load_config(str(config), environ={})
    knowledge = load_knowledge(cfg.diagnosis.nginx_conf, list(cfg.diagnosis.fpm_conf))
    pipeline = pipeline_factory(cfg)[0]()
    by_host = {"lab": logs} if isinstance(logs, Path) else logs
    plans = [
        plan
        for host, folder in by_host.items()
        for plan in plan_inputs(
            pipeline, [str(folder / p) for p, _, _ in INPUTS], host=host, format_by_path=knowledge.format_by_path
        )
    ]
    if learned is not None:
        learned.update(learn_host_timezones(pipeline, plans))
        assert all(learned[h].utcoffset(None) is not None for h in by_host), learned
        pipeline = pipeline_factory(cfg, learned)[0]()
    sink = MemorySink()
    replay(pipeline, plans, sink)
    return sink


def produce_lines(bootstrap: str, lines: Mapping[str, Sequence[bytes]], key: bytes = b"lab") -> None:
    """Each topic's lines, in order, keyed by host; returns once the broker has them all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for topic, records in lines.items():
        for line in records:
            producer.send(topic, value=line, key=key)
    producer.flush()
    producer.close()


def lab_lines(logs: Path, topics: Sequence[str]) -> dict[str, list[bytes]]:
    """Each input topic's lines: its recorded log's, in ``INPUTS`` order."""
    return {t: (logs / p).read_bytes().splitlines() for t, (p, _, _) in zip(topics, INPUTS, strict=True)}


def end_offsets(bootstrap: str, topics: Sequence[str], partitions: int) -> dict[TopicPartition, int]:
    """The end offset of each partition of the topics."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return dict(consumer.end_offsets([TopicPartition(t, n) for t in topics for n in range(partitions)]))
    finally:
        consumer.close()


def as_json(kind: OutputKind, items: Sequence[Any]) -> list[dict[str, Any]]:
    """Replay's incidents or episodes as the service writes them to their topic."""
    return [json.loads(serialise(Output(kind, item, None))) for item in items]
