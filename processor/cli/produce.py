"""``badgateway produce``: log files into the service's input topics, one record per line, keyed by host.

The quick start's producer (README): it stands in for a log shipper, so the service can be seen working with
nothing but the bundled broker and example. Each file's log type is detected as ``replay`` detects it and sent
to the topic the configuration's ``[[inputs]]`` give that type (``examples/badgateway.toml``: nginx-access,
nginx-error, php-fpm). Topics are created when missing. Lines go as the raw lines a shipper would send, all keyed
by one host so that a host's records share a partition, as the join expects, and in the order a shipper tailing
the files live sends them: the files merged in event time (``shipping_order``), each file in its own order. Sent
file after file, a partition holding two access logs would carry the second one's first lines minutes behind the
first one's last: later than the allowed lateness, so joined or not depending on which topic the service happened
to fetch first.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import os
import socket
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from processor.core.errors import KafkaError, UserConfigError
from processor.core.events import Event, Record, SourceRef
from processor.core.watermark import NO_WATERMARK
from processor.io.discovery import discover
from processor.io.files import open_lines
from processor.io.kafka.client import ClientError, backend
from processor.io.kafka.settings import KafkaSection
from processor.runners.service_config import load_config

if TYPE_CHECKING:
    from processor.pipeline import Pipeline
    from processor.runners.replay import Plan

# the topics of examples/badgateway.toml's [[inputs]], when no --config says otherwise
DEFAULT_TOPICS = {"nginx_access": "nginx-access", "nginx_error": "nginx-error", "php_fpm": "php-fpm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``badgateway produce``."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="log files, directories or globs (.gz … too)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a badgateway.toml: its [kafka] broker and its [[inputs]] topics for each log type "
        "(none: the topics of examples/badgateway.toml on --bootstrap)",
    )
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        help="the broker(s), comma-separated (none: the config's, else $BADGATEWAY_KAFKA_BOOTSTRAP_"
        "SERVERS, else localhost:9092)",
    )
    p.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="TYPE=TOPIC",
        help="send a log type to a topic (e.g. php_fpm_slowlog=php-fpm-slow), repeatable",
    )
    p.add_argument("--host", help="the record key: the host every line comes from (none: this machine's name)")
    p.add_argument(
        "--kafka-client",
        choices=("kafka-python", "confluent"),
        default=None,
        help="the Kafka client library (none: the config's kafka.client, else kafka-python)",
    )


def _kafka_and_topics(args: argparse.Namespace) -> tuple[KafkaSection, dict[str, str]]:
    if args.config:
        config = load_config(args.config)
        kafka = config.kafka
        topics = {i.type: i.topic for i in config.inputs if i.type != "auto"}
    else:
        env = os.environ.get("BADGATEWAY_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
        kafka = KafkaSection(bootstrap_servers=tuple(s.strip() for s in env.split(",") if s.strip()))
        topics = dict(DEFAULT_TOPICS)
    if args.bootstrap:
        kafka = dataclasses.replace(kafka, bootstrap_servers=tuple(s.strip() for s in args.bootstrap.split(",")))
    if args.kafka_client:
        kafka = dataclasses.replace(kafka, client=args.kafka_client)
    for item in args.topic:
        log_type, sep, topic = item.partition("=")
        if not sep or not topic:
            raise UserConfigError(f"--topic {item!r}: expected TYPE=TOPIC, e.g. nginx_access=nginx-access")
        topics[log_type.strip()] = topic.strip()
    return kafka, topics


def _timed_lines(pipeline: Pipeline, index: int, plan: Plan) -> Iterator[tuple[int, int, int, bytes]]:
    """A file's lines as (event time, file index, line number, line), in file order: the time is the newest
    written so far (a line without one of its own, a continuation or a blank, goes with the line before it)."""
    ts_ms, name = NO_WATERMARK, plan.file.display
    for line_no, raw in open_lines(plan.file):
        text = raw.decode("utf-8", "surrogateescape")
        parsed = pipeline.parser.parse(
            Record(text, SourceRef(name, line_no), plan.log_type, plan.host, plan.access_format)
        )
        if isinstance(parsed, Event) and parsed.ts_ms > ts_ms:
            ts_ms = parsed.ts_ms
        yield ts_ms, index, line_no, raw


def shipping_order(pipeline: Pipeline, plans: Sequence[Plan]) -> Iterator[tuple[Plan, bytes]]:
    """Every line of the files, as a shipper tailing them live sends them: merged in event time (ties: the
    files' order), each file in its own order. Reads each file once, a line at a time."""
    merged = heapq.merge(*(_timed_lines(pipeline, i, plan) for i, plan in enumerate(plans)))
    for _, index, _, raw in merged:
        yield plans[index], raw


def produce_command(args: argparse.Namespace) -> int:
    """Send every line of the files to its type's topic; one line per file on stderr says where it went."""
    from processor.pipeline import Pipeline, PipelineSettings
    from processor.runners.replay import plan_inputs

    kafka, topics = _kafka_and_topics(args)
    host = args.host or socket.gethostname()
    pipeline = Pipeline(PipelineSettings())
    plans = plan_inputs(pipeline, discover(args.paths), host=host)
    client = backend(kafka)
    failures: list[BaseException] = []
    sent: Counter[str] = Counter()
    try:
        for name in sorted({topics[p.log_type] for p in plans if p.log_type in topics}):
            client.ensure_topic(kafka, name, 1)
        producer = client.make_producer(kafka)
        try:
            shipped = []
            for plan in plans:
                if plan.log_type in topics:
                    shipped.append(plan)
                else:
                    print(
                        f"badgateway produce: {plan.file.display}: {plan.log_type or 'unknown type'}: no topic "
                        f"for it, skipped (--topic {plan.log_type or 'TYPE'}=TOPIC sends it)",
                        file=sys.stderr,
                    )
            lines: Counter[str] = Counter()
            for plan, line in shipping_order(pipeline, shipped):
                producer.send(topics[plan.log_type or ""], line, host.encode(), None, failures.append)
                lines[plan.file.display] += 1
            for plan in shipped:
                to, n = topics[plan.log_type or ""], lines[plan.file.display]
                sent[to] += n
                print(f"badgateway produce: {plan.file.display}: {n:,} lines ({plan.log_type}) → {to}", file=sys.stderr)
            producer.flush()
        finally:
            producer.close(10.0)
    except ClientError as exc:
        raise KafkaError(f"kafka ({', '.join(kafka.bootstrap_servers)}): {exc}") from exc
    if failures:
        raise KafkaError(f"kafka: {len(failures)} records were not delivered: {failures[0]}")
    total = ", ".join(f"{topic} {n:,}" for topic, n in sorted(sent.items())) or "nothing"
    print(f"badgateway produce: sent {total} (key {host})", file=sys.stderr)
    return 0
