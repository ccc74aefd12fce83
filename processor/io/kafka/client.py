"""badgateway's own view of a Kafka client: what the service needs, whichever library speaks the protocol.

Implementations are registered by name (``register_backend``) and chosen by ``kafka.client``. Two are built in:
``processor.io.kafka.python_client`` (kafka-python, pure Python, the default and the reference) and
``processor.io.kafka.confluent_client`` (confluent-kafka on librdkafka, the fast path).
The service, the commit rule and the tests see only this module's types:

- ``TP`` names a partition, ``Msg`` is one consumed record (kafka-python's ``ConsumerRecord`` has the same fields);
- ``Consumer.poll`` gives a batch grouped by partition, in offset order; ``on_assign`` is told where each newly
  assigned partition starts (its committed offset, else where ``auto_offset_reset`` put it), and every record
  polled after it starts there;
- ``Producer.send`` reports a failed delivery to ``on_error`` (at the latest when ``flush`` returns);
- every library error comes out as ``ClientError`` (``retriable`` says whether waiting helps), and a client that
  cannot reach any broker when it is built raises ``Unreachable``.

Keyed records go to ``murmur2(key) % partitions`` with either client (the Java client's partitioner, which
kafka-python uses and librdkafka offers as ``murmur2_random``): switching clients keeps every host's records on
the partitions the join expects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from typing import NamedTuple, Protocol

from processor.core.errors import UserConfigError
from processor.io.kafka.settings import KafkaSection

Headers = list[tuple[str, bytes]]


class TP(NamedTuple):
    """A topic partition (hashable; the commit planner's key)."""

    topic: str
    partition: int


class Msg(NamedTuple):
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None


class ClientError(Exception):
    """A Kafka library error, with the library's own type name in the message."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class Unreachable(ClientError):
    """No broker answered while the client was being built (``with_backoff`` retries)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


AssignCallback = Callable[[Mapping[TP, "int | None"]], None]
RevokeCallback = Callable[[list[TP]], None]


class Consumer(Protocol):
    #: True when the rebalance callbacks run in the thread that calls ``poll`` (then a blocking commit, or a
    #: transaction commit, is allowed inside ``on_revoke``)
    callbacks_in_poll: bool

    def subscribe(self, topics: list[str], on_assign: AssignCallback, on_revoke: RevokeCallback) -> None: ...

    def poll(self, timeout_s: float) -> Mapping[TP, list[Msg]]:
        """Records by partition (each list in offset order); empty when nothing came within ``timeout_s``."""
        ...

    def assignment(self) -> list[TP]: ...

    def rewind(self) -> dict[TP, int | None]:
        """Every assigned partition back to its committed offset (or the reset policy); the new positions."""
        ...

    def commit(self, offsets: Mapping[TP, int], *, blocking: bool) -> None: ...

    def highwater(self, tp: TP) -> int | None:
        """The partition's end offset as of the last fetch (None before one)."""
        ...

    def position(self, tp: TP) -> int | None:
        """The offset of the next record the consumer will give (past transaction markers), None if unknown."""
        ...

    def close(self) -> None:
        """Leave the group without committing."""
        ...


class Producer(Protocol):
    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None,
        on_error: Callable[[BaseException], None],
    ) -> None: ...

    def flush(self) -> None:
        """Until every record sent is acknowledged or has failed (its ``on_error`` called)."""
        ...

    def close(self, timeout_s: float) -> None: ...

    def begin_transaction(self) -> None: ...

    def commit_transaction(self) -> None: ...

    def abort_transaction(self) -> None: ...

    def send_offsets_to_transaction(self, offsets: Mapping[TP, int], consumer: Consumer) -> None: ...


class Backend(Protocol):
    """What a client library module provides."""

    NAME: str

    def make_consumer(self, cfg: KafkaSection, *, read_committed: bool = False) -> Consumer: ...

    def make_producer(self, cfg: KafkaSection, transactional_id: str | None = None) -> Producer: ...

    def topic_partitions(self, cfg: KafkaSection, topics: list[str]) -> dict[str, int]:
        """Partition count per topic that exists (missing topics are left out)."""
        ...

    def ensure_topic(self, cfg: KafkaSection, name: str, partitions: int) -> None:
        """Create the topic if it is not there (replication: the broker's default)."""
        ...


BackendLoader = Callable[[], Backend]
_BACKENDS: dict[str, BackendLoader] = {}
# a third-party backend installed as a package: ``[project.entry-points."badgateway.kafka_clients"]``
# ``name = "my_package.backend:load"`` (a zero-argument loader returning the backend; imported when first named)
ENTRY_POINTS = "badgateway.kafka_clients"


def register_backend(name: str, load: BackendLoader) -> None:
    """Make ``kafka.client = "<name>"`` choose this implementation. ``load`` runs on first use (a library that
    is not installed costs nothing until it is named) and raises ``UserConfigError`` when it cannot load."""
    if not name or name in _BACKENDS:
        raise ValueError(f"Kafka client {name!r} is empty or already registered")
    _BACKENDS[name] = load


def unregister_backend(name: str) -> None:
    """Remove a backend added with ``register_backend`` (tests); the built-in two stay."""
    if name in ("kafka-python", "confluent"):
        raise ValueError(f"Kafka client {name!r} is built in")
    _BACKENDS.pop(name, None)


def _installed() -> dict[str, BackendLoader]:
    """Backends installed through the ``badgateway.kafka_clients`` entry point group (not yet registered)."""
    found: dict[str, BackendLoader] = {}
    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name not in _BACKENDS:
            found[ep.name] = partial(_load_entry_point, ep)
    return found


def _load_entry_point(ep: EntryPoint) -> Backend:
    try:
        load = ep.load()
        got: Backend = load()
    except Exception as exc:  # noqa: BLE001 - third-party code: one located line, not a traceback
        raise UserConfigError(
            f"kafka.client: the backend {ep.name!r} ({ep.value}) did not load: {type(exc).__name__}: {exc}"
        ) from None
    return got


def backend_names() -> tuple[str, ...]:
    """The values ``kafka.client`` accepts: the registered backends and the installed ones."""
    return (*_BACKENDS, *sorted(_installed()))


def backend(cfg: KafkaSection) -> Backend:
    """The implementation ``kafka.client`` names."""
    load = _BACKENDS.get(cfg.client) or _installed().get(cfg.client)
    if load is None:
        raise UserConfigError(
            f"kafka.client: {cfg.client!r} is not a Kafka client here (one of: {', '.join(backend_names())})"
        )
    return load()


def _kafka_python() -> Backend:
    from processor.io.kafka import python_client

    return python_client  # a module satisfies the protocol


def _confluent() -> Backend:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise UserConfigError(
            "kafka.client: 'confluent' needs the confluent-kafka package; install it with "
            "pip install 'badgateway[confluent]' (or set kafka.client = \"kafka-python\")"
        ) from None
    from processor.io.kafka import confluent_client

    return confluent_client


register_backend("kafka-python", _kafka_python)
register_backend("confluent", _confluent)
