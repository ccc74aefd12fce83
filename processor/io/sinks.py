"""Where outputs go: JSON Lines files or stdout, and an in-memory sink for users' own tests."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson

from processor.config import KafkaSection
from processor.ecs import to_ecs
from processor.events import DeadLetter, Event
from processor.errors import KafkaError
from processor.io.kafka_client import ClientError, backend
from processor.pipeline import Output

# Control characters in log content are escaped by orjson (\u00XX): no raw terminal escapes in output.
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def serialise(out: Output) -> bytes:
    """One output as a JSON line (incident dict, ECS event, or dead-letter record)."""
    value = out.value
    doc: Any = to_ecs(value) if isinstance(value, Event) else value.to_dict() if isinstance(value, DeadLetter) \
        else value
    try:
        return orjson.dumps(doc, default=str, option=_OPTS)
    except TypeError:
        # invalid UTF-8 from the input travels as surrogate escapes; JSON shows those bytes as \\xHH text
        return orjson.dumps(_printable(doc), default=str, option=_OPTS)


def _printable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(v) for v in value]
    return value


class Sink(Protocol):
    def write(self, out: Output) -> None: ...
    def close(self) -> None: ...


class JsonLinesSink:
    """Appends JSON lines to a file (``-`` = stdout), buffered; flushes line by line when asked."""

    def __init__(self, path: str, *, line_buffered: bool = False) -> None:
        self.path = path
        self._fh: IO[bytes] = sys.stdout.buffer if path == "-" else open(path, "wb")
        self._line_buffered = line_buffered
        self.count = 0

    def write(self, out: Output) -> None:
        self._fh.write(serialise(out))
        self.count += 1
        if self._line_buffered:
            self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        if self._fh is not sys.stdout.buffer:
            self._fh.close()


@dataclass
class MemorySink:
    """Collects outputs in lists (for tests and embedding)."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def write(self, out: Output) -> None:
        if out.kind == "incident":
            self.incidents.append(out.value)
        elif out.kind == "event":
            self.events.append(out.value)
        else:
            self.dead_letters.append(out.value)

    def close(self) -> None:
        return None


class KafkaTopicSink:
    """Incidents to a Kafka topic (``follow --kafka-topic``): key = host (murmur2 partitioner), ``acks=all``,
    idempotent, through the service's client interface (``--kafka-client kafka-python|confluent``).

    ``flush`` returns once every incident is acknowledged and raises ``KafkaError`` if one was refused, so the
    follower never saves a state-file offset past an incident the broker does not have (a restart re-reads it).
    """

    def __init__(self, bootstrap: str, topic: str, client: str = "kafka-python") -> None:
        cfg = KafkaSection(client=client, bootstrap_servers=tuple(b for b in bootstrap.split(",") if b))
        self.topic = topic
        self._failed: BaseException | None = None
        try:
            self._producer = backend(cfg).make_producer(cfg)
        except ClientError as exc:
            raise KafkaError(f"kafka: {exc}") from exc

    def _fail(self, exc: BaseException) -> None:
        self._failed = self._failed or exc

    def write(self, out: Output) -> None:
        host = out.value.get("host", {}).get("name") if isinstance(out.value, dict) else None
        key = host.encode("utf-8", "surrogateescape") if isinstance(host, str) else None
        self._producer.send(self.topic, serialise(out).rstrip(b"\n"), key, None, self._fail)

    def flush(self) -> None:
        try:
            self._producer.flush()
        except ClientError as exc:
            self._fail(exc)
        if self._failed is not None:
            raise KafkaError(f"kafka: an incident was not delivered to {self.topic}: {self._failed}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close(10)
