"""The Kafka side of the service's settings: the client, the input topics and the output topics.

Plain frozen data the Kafka layer (clients, inputs, sinks) reads; ``processor.runners.service_config`` builds them
from TOML, the environment and ``--set`` flags, with the rest of the service's settings, and validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENVELOPES = ("auto", "raw", "filebeat", "vector", "fluentbit")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


class Secret:
    """A value that must never reach a log line or a repr (``reveal()`` is the only way out)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class KafkaSection:
    # kafka-python (pure Python, the default) or confluent (librdkafka: pip install 'badgateway[confluent]')
    client: str = "kafka-python"
    bootstrap_servers: tuple[str, ...] = ("localhost:9092",)
    group_id: str = "badgateway"
    client_id: str = "badgateway"
    auto_offset_reset: str = "earliest"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    session_timeout_s: float = 10.0
    transactional_id: str = ""  # exactly_once; "" = badgateway-<group_id>-<host name>
    repartition: bool = False  # re-key every input by host into <group_id>-repartition, join from there
    connect_backoff_max_s: float = 10.0


@dataclass(frozen=True, slots=True)
class InputSection:
    topic: str = ""
    type: str = "auto"
    format: str = ""
    envelope: str = "auto"
    message_field: str = ""
    host_field: str = ""
    host_from: str = "auto"


@dataclass(frozen=True, slots=True)
class OutputsSection:
    incidents_topic: str = "badgateway-incidents"
    events_topic: str = ""
    dead_letter_topic: str = "badgateway-dead-letters"
    episodes_topic: str = ""  # "" = off; else one badgateway.episode record per opened/updated/resolved, key = host
    # an output topic not on the broker at start: "create" it (partitions: the inputs' most), or "refuse" to start
    missing_topics: str = "create"
