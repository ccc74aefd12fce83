"""examples/shippers/: each recipe's Kafka records, as recorded in tests/operator/shipper_samples/ (written as
each shipper documents its Kafka output), are read by the service's envelope reader into the right line, host
and file, and by the pipeline into the right event; each recipe's multi-line rule cuts the lab's logs into the
entries badgateway's own reader finds."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from processor.core.events import Event, Record, SourceRef
from processor.io.envelopes import Unwrapped
from processor.io.kafka.client import Msg
from processor.io.kafka.inputs import InputReader
from processor.pipeline import Pipeline, PipelineSettings
from processor.runners.service_config import InputSection

REPO = Path(__file__).resolve().parents[2]
SHIPPERS = REPO / "examples" / "shippers"
SAMPLES = Path(__file__).with_name("shipper_samples")
TYPES = {
    "nginx-access": "nginx_access",
    "nginx-error": "nginx_error",
    "php-fpm": "php_fpm",
    "php-fpm-slow": "php_fpm_slowlog",
}
FILES = {
    "nginx-access": "/var/log/nginx/access.log",
    "nginx-error": "/var/log/nginx/error.log",
    "php-fpm": "/var/log/php8.2-fpm.log",
    "php-fpm-slow": "/var/log/php-fpm/slow.slow.log",
}
SHIPPER_NAMES = ["vector", "fluentbit", "filebeat"]


def samples(shipper: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / f"{shipper}.jsonl").read_text().splitlines()]


def read(sample: dict[str, Any], envelope: str) -> tuple[Unwrapped, str | None, Event]:
    """What `badgateway run` does with the record: the input's envelope, its host, one pipeline step."""
    topic = sample["topic"]
    reader = InputReader(InputSection(topic=topic, type=TYPES[topic], envelope=envelope), 1_048_576)
    value = json.dumps(sample["value"]).encode()
    msg = Msg(topic, 0, 7, sample["key"].encode(), value, None)
    source = SourceRef(topic, 7, 0)
    got = reader.envelope.unwrap(value, source)
    assert isinstance(got, Unwrapped), got
    host = reader.host(got.host, msg)
    pipeline = Pipeline(PipelineSettings(emit_events=True))
    outputs = (
        pipeline.feed(
            Record(got.text, source, reader.log_type, host, reader.access_format, 1, got.extra.get("log_file"))
        )
        + pipeline.flush()
    )
    events = [o.value for o in outputs if o.kind == "event"]
    dead = [o.value for o in outputs if o.kind == "dead_letter"]
    assert not dead, dead
    assert len(events) == 1, outputs
    event = events[0]
    assert isinstance(event, Event)
    return got, host, event


@pytest.mark.parametrize("shipper", SHIPPER_NAMES)
@pytest.mark.parametrize("envelope", ["auto", "shipper"])
def test_each_recorded_record_reads_into_the_right_event(shipper: str, envelope: str) -> None:
    records = samples(shipper)
    assert {r["topic"] for r in records} == set(TYPES)
    seen = []
    for sample in records:
        got, host, event = read(sample, shipper if envelope == "shipper" else "auto")
        assert host == "web-1"
        assert got.extra.get("log_file") == FILES[sample["topic"]]
        assert event.log_type == TYPES[sample["topic"]] and event.host == "web-1"
        f = event.fields
        if event.log_type == "nginx_access":
            assert f["status"] == 502 and f["uri"].startswith("/shop/index.php")
        elif event.log_type == "nginx_error" and "\n" in got.text:
            # a FastCGI stderr entry of several lines, whole
            assert got.text.count("\n") >= 3 and "while reading response header from upstream" in got.text
            assert event.raw == got.text
        elif event.log_type == "nginx_error":
            assert f["errno"] == 2 and "php8.1-fpm.sock" in str(f["upstream"])
        elif event.log_type == "php_fpm":
            assert f["pool"] == "crash"
        else:
            assert f["pool"] == "slow" and f["script_filename"].endswith("/slow/sleep.php") and len(f["frames"]) == 1
        seen.append(event.log_type)
    assert sorted(seen) == sorted(["nginx_access", "nginx_error", "nginx_error", "php_fpm", "php_fpm_slowlog"])


# --- the recipes' own settings -------------------------------------------------------------------------


def multiline_patterns(shipper: str) -> dict[str, str]:
    """topic -> the regex that starts an entry, as the recipe writes it."""
    if shipper == "vector":
        cfg = tomllib.loads((SHIPPERS / "vector.toml").read_text())
        topic_of = {name: sink["topic"] for name, sink in cfg["sinks"].items() for name in sink["inputs"]}
        return {
            topic_of[name]: src["multiline"]["start_pattern"]
            for name, src in cfg["sources"].items()
            if "multiline" in src
        }
    if shipper == "fluentbit":
        text = (SHIPPERS / "fluent-bit.yaml").read_text()
        starts = dict(
            re.findall(
                r"- name: (\w+)\n\s+type: regex\n\s+flush_timeout: \d+\n\s+rules:\n"
                r"\s+- state: start_state\n\s+regex: '/(.*)/'",
                text,
            )
        )
        uses = re.findall(r"tag: ([\w-]+)\n(?:\s+\w+: .*\n)*?\s+multiline\.parser: (\w+)", text)
        return {tag: starts[parser].replace("\\/", "/") for tag, parser in uses}
    text = (SHIPPERS / "filebeat.yml").read_text()
    return dict(
        re.findall(
            r"log_topic: ([\w-]+)\}\n\s+parsers:\n\s+- multiline:\n\s+type: pattern\n"
            r"\s+pattern: '(.*)'",
            text,
        )
    )


def sink_settings(shipper: str) -> dict[str, object]:
    text = (
        SHIPPERS / {"vector": "vector.toml", "fluentbit": "fluent-bit.yaml", "filebeat": "filebeat.yml"}[shipper]
    ).read_text()
    if shipper == "vector":
        cfg = tomllib.loads(text)
        sinks = cfg["sinks"].values()
        return {
            "topics": {s["topic"] for s in sinks},
            "json": all(s["encoding"]["codec"] == "json" for s in sinks),
            "key": {s["key_field"] for s in sinks},
        }
    if shipper == "fluentbit":
        return {
            "topics": set(re.findall(r"topics: ([\w-]+)", text)),
            "json": text.count("format: json") == text.count("name: kafka"),
            "key": set(re.findall(r"message_key_field: (\w+)", text)),
        }
    return {
        "topics": set(re.findall(r"log_topic: ([\w-]+)", text)),
        "json": "codec.json:" in text,
        "key": set(re.findall(r"key: '%\{\[([\w.]+)\]\}'", text)),
    }


@pytest.mark.parametrize("shipper, key", [("vector", "host"), ("fluentbit", "hostname"), ("filebeat", "host.name")])
def test_recipes_send_json_keyed_by_host_to_the_services_topics(shipper: str, key: str) -> None:
    settings = sink_settings(shipper)
    assert settings["topics"] == set(TYPES)
    assert settings["json"] is True
    assert settings["key"] == {key}
    config = tomllib.loads((REPO / "examples" / "badgateway.toml").read_text())
    assert {i["topic"] for i in config["inputs"]} == set(TYPES) - {"php-fpm-slow"}
    assert 'topic = "php-fpm-slow"\ntype = "php_fpm_slowlog"' in (SHIPPERS / "README.md").read_text()


def entries_by_pattern(lines: list[str], start: str) -> list[str]:
    """The shipper's grouping: an entry starts at a line matching `start`; every other line joins the entry
    before it (lines before the first start are one entry of their own, as a shipper sends them)."""
    pattern = re.compile(start)
    groups: list[list[str]] = []
    for line in lines:
        if pattern.search(line) or not groups:
            groups.append([line])
        else:
            groups[-1].append(line)
    return ["\n".join(g) for g in groups]


def badgateways_entries(path: Path, log_type: str) -> list[str]:
    pipeline = Pipeline(PipelineSettings(emit_events=True))
    outputs = []
    for n, line in enumerate(path.read_text().split("\n")[:-1], 1):
        outputs += pipeline.feed(Record(line, SourceRef(path.name, n), log_type, "web-1"))
    outputs += pipeline.flush()
    return [o.value.raw for o in outputs if o.kind == "event"]


@pytest.mark.parametrize("shipper", SHIPPER_NAMES)
@pytest.mark.parametrize("topic, log", [("nginx-error", "error.log"), ("php-fpm-slow", "slow.log")])
def test_the_multiline_rule_cuts_the_lab_logs_into_badgateways_entries(shipper: str, topic: str, log: str) -> None:
    path = REPO / "examples" / "lab" / "logs" / log
    start = multiline_patterns(shipper)[topic]
    lines = path.read_text().split("\n")[:-1]
    shipped = [e for e in entries_by_pattern(lines, start) if e.strip()]
    ours = badgateways_entries(path, TYPES[topic])
    assert [e.rstrip("\n") for e in shipped] == [e.rstrip("\n") for e in ours]
    # and each shipped entry, sent in that shipper's envelope, is one event
    for entry in shipped[:5]:
        value = {
            "vector": {"message": entry, "host": "web-1", "file": FILES[topic]},
            "fluentbit": {"log": entry, "hostname": "web-1", "path": FILES[topic]},
            "filebeat": {"message": entry, "host": {"name": "web-1"}, "log": {"file": {"path": FILES[topic]}}},
        }
        read({"topic": topic, "key": "web-1", "value": value[shipper]}, shipper)
