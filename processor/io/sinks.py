"""Where outputs go: JSON Lines files or stdout, and an in-memory sink for users' own tests."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from processor.core.ecs import to_ecs
from processor.core.errors import BadgatewayError, KafkaError
from processor.core.events import DeadLetter, Event
from processor.io.kafka.client import ClientError, backend
from processor.io.kafka.settings import KafkaSection
from processor.pipeline import Output

# Bytes gathered before one write(2) when not flushing line by line.
_WRITE_BYTES = 1 << 18
# Control characters in log content are escaped by orjson (\u00XX): no raw terminal escapes in output.
_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def serialise(out: Output) -> bytes:
    """One output as a JSON line (incident dict, ECS event, or dead-letter record)."""
    value = out.value
    doc: Any = (
        to_ecs(value) if isinstance(value, Event) else value.to_dict() if isinstance(value, DeadLetter) else value
    )
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
    """Where one kind of output goes. ``flush`` returns once everything written is durable where the sink
    writes (a file's bytes handed to the kernel, a topic's records acknowledged) or raises; ``close`` flushes."""

    def write(self, out: Output) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class Router:
    """Every driver's one output fan-out: each kind of output (``incident``, ``event``, ``dead_letter``) to its
    sink, and every output to the observers (the summary's tally, the report). A kind with no sink is one the
    user did not ask for (no ``--events``). One sink may take several kinds (``filter --emit both``)."""

    def __init__(self, sinks: Mapping[str, Sink | None], observers: Sequence[Callable[[Output], None]] = ()) -> None:
        self._by_kind = {kind: sink for kind, sink in sinks.items() if sink is not None}
        self._sinks = list({id(s): s for s in self._by_kind.values()}.values())
        self._observers = tuple(observers)

    def write(self, out: Output) -> None:
        sink = self._by_kind.get(out.kind)
        if sink is not None:
            sink.write(out)
        for observe in self._observers:
            observe(out)

    def ship(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            self.write(out)

    def flush(self) -> None:
        for sink in self._sinks:
            sink.flush()

    def close(self) -> None:
        """Close every sink, even after one fails; the first failure is the one raised."""
        first: BaseException | None = None
        for sink in self._sinks:
            try:
                sink.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other sinks are closed
                first = first or exc
        if first is not None:
            raise first


class OutputError(BadgatewayError):
    """An output that cannot be written, or that would destroy an input."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{'stdout' if path == '-' else path}: {reason}")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(outputs: Mapping[str, str | None], inputs: Iterable[str], *, stdin_is_input: bool = False) -> None:
    """Refuse, before anything is read or truncated, an output that is one of the inputs (by device and inode)
    or that cannot be written: a missing or read-only directory, a directory, a full file system.

    ``outputs`` maps each option (``-o``, ``--events`` …) to its path (``-`` is stdout, None not asked for).
    """
    taken = {key: path for path in inputs if (key := _identity(path)) is not None}
    if stdin_is_input:
        st = os.fstat(0)
        if stat.S_ISREG(st.st_mode):
            taken[(st.st_dev, st.st_ino)] = "stdin"
    for option, path in outputs.items():
        if path is None:
            continue
        if path == "-":
            try:
                st = os.fstat(sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                continue
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
        else:
            ident = _identity(path)
        if ident is not None and ident in taken:
            raise OutputError(path, f"{option} is the input {taken[ident]}: refusing to overwrite it")
        if path != "-":
            _check_writable(path)


def _check_writable(path: str) -> None:
    if os.path.isdir(path):
        raise OutputError(path, "is a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise OutputError(path, "permission denied")
        if not stat.S_ISREG(os.stat(path).st_mode):
            return  # a FIFO, /dev/null, /dev/full: found out on the first write
        where = os.path.dirname(os.path.abspath(path))
    else:
        where = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(where):
            raise OutputError(path, f"directory {where} does not exist")
        if not os.access(where, os.W_OK | os.X_OK):
            raise OutputError(path, f"directory {where} is not writable")
    try:
        vfs = os.statvfs(where)
    except OSError:
        return
    if vfs.f_blocks > 0 and vfs.f_bavail == 0:
        raise OutputError(path, "no space left on device")


class JsonLinesSink:
    """Appends JSON lines to a file (``-`` = stdout), buffered; flushes line by line when asked.

    Only whole lines reach a file: each write(2) carries whole lines, and when one fails half-way (a full
    disk) a regular file is cut back to its last whole line and ``OutputError`` stops the run.
    """

    def __init__(self, path: str, *, line_buffered: bool = False) -> None:
        self.path = path
        self._line_buffered = line_buffered
        self.count = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._failed = False
        self._owns = path != "-"
        self._fd: int | None
        if path == "-":
            sys.stdout.flush()
            try:
                self._fd = sys.stdout.fileno()
            except (OSError, ValueError, AttributeError):
                self._fd = None  # stdout replaced (a test capturing it): write through its buffer
        else:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
            except OSError as err:
                raise OutputError(path, (err.strerror or str(err)).lower()) from err
        self._regular = False
        self._whole = 0  # file offset just after the last whole line written
        if self._fd is not None:
            try:
                self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
                self._whole = os.lseek(self._fd, 0, os.SEEK_CUR) if self._regular else 0
            except OSError:
                self._regular = False

    def write(self, out: Output) -> None:
        line = serialise(out)
        self._pending.append(line)
        self._pending_bytes += len(line)
        self.count += 1
        if self._line_buffered or self._pending_bytes >= _WRITE_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._failed or not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        if self._fd is None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, memoryview(data)[written:])
        except BrokenPipeError:
            self._failed = True
            raise
        except OSError as err:
            self._failed = True
            if self._regular:
                try:  # keep the whole lines that made it, cut the half one
                    os.ftruncate(self._fd, self._whole + data.rfind(b"\n", 0, written) + 1)
                except OSError:
                    pass
            reason = "no space left on device" if err.errno == errno.ENOSPC else (err.strerror or str(err)).lower()
            raise OutputError(self.path, f"{reason}; stopped (the output ends with its last whole line)") from err
        self._whole += len(data)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._owns and self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)


@dataclass
class MemorySink:
    """Collects outputs in lists (for tests and embedding)."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)

    def write(self, out: Output) -> None:
        if out.kind == "incident":
            self.incidents.append(out.value)
        elif out.kind == "event":
            self.events.append(out.value)
        elif out.kind == "episode":
            self.episodes.append(out.value)
        else:
            self.dead_letters.append(out.value)

    def flush(self) -> None:
        return None

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
