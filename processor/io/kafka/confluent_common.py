"""What confluent-kafka's consumer, producer and admin client share: librdkafka's names for the settings, its
errors as ``ClientError``, its log lines through structlog, and the bootstrap check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from processor.io.kafka.client import ClientError, Unreachable
from processor.io.kafka.settings import KafkaSection
from processor.io.log import get_logger

TIMEOUT_S = 30.0  # for calls that wait on the broker (committed offsets, transactions, metadata)
# librdkafka's syslog levels → structlog methods
_LEVELS = {0: "error", 1: "error", 2: "error", 3: "error", 4: "warning", 5: "info", 6: "info", 7: "debug"}


class _Logger:
    """librdkafka's own log lines (it would write them to stderr) as structured log events."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        getattr(get_logger(), _LEVELS.get(level, "info"))("kafka.librdkafka", message=fmt % args)


def describe(err: KafkaError) -> str:
    return f"{err.name()}: {err.str()}"


def _error_cb(err: KafkaError) -> None:
    # client-wide conditions (all brokers down, authentication); the client keeps reconnecting by itself
    get_logger().warning("kafka.client_error", error=describe(err), fatal=err.fatal())


def client_options(cfg: KafkaSection) -> dict[str, Any]:
    """librdkafka's names for the settings every client shares (brokers, SASL/SSL)."""
    opts: dict[str, Any] = {
        "bootstrap.servers": ",".join(cfg.bootstrap_servers),
        "client.id": cfg.client_id,
        "security.protocol": cfg.security_protocol,
        "error_cb": _error_cb,
        "logger": _Logger(),
    }
    if cfg.sasl_mechanism:
        opts["sasl.mechanism"] = cfg.sasl_mechanism
        opts["sasl.username"] = cfg.sasl_username
        opts["sasl.password"] = cfg.sasl_password.reveal()
    for key, name in (
        ("ssl_cafile", "ssl.ca.location"),
        ("ssl_certfile", "ssl.certificate.location"),
        ("ssl_keyfile", "ssl.key.location"),
    ):
        if getattr(cfg, key):
            opts[name] = getattr(cfg, key)
    return opts


def client_error(exc: KafkaException) -> ClientError:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return ClientError(
            f"KafkaException: {describe(err)}",
            retriable=err.retriable()
            or (
                not err.fatal()
                and not err.txn_requires_abort()
                and err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT)
            ),
        )
    return ClientError(f"KafkaException: {exc}")


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except KafkaException as exc:
        raise client_error(exc) from exc


def bootstrap(native: Any, cfg: KafkaSection) -> None:
    """librdkafka connects lazily: ask for metadata once, so an unreachable cluster is said at start."""
    try:
        native.list_topics(timeout=5.0)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        reason = describe(err) if isinstance(err, KafkaError) else str(err)
        raise Unreachable(f"Unable to bootstrap from {list(cfg.bootstrap_servers)}: {reason}") from exc
