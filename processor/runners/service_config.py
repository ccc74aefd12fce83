"""``badgateway run`` configuration: TOML → one frozen, validated ``ServiceConfig`` tree.

Precedence, lowest first: built-in defaults, the TOML file, ``BADGATEWAY_<SECTION>_<KEY>`` environment variables
(``BADGATEWAY_INPUTS_<N>_<KEY>`` for the N-th input), then ``--set section.key=value`` flags. Validated once, here:
unknown keys are rejected with the list of valid ones, wrong types are named with their origin and key. Every
error is a ``UserConfigError`` (also a ``ValueError``). The SASL password is a ``Secret``: no repr shows it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from grammars.plugins import log_types
from processor.core.errors import UserConfigError
from processor.io.kafka.client import backend_names
from processor.io.kafka.settings import (
    ENVELOPES,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    InputSection,
    KafkaSection,
    OutputsSection,
    Secret,
)  # fmt: skip

ENV_PREFIX = "BADGATEWAY_"
ON_STOP = ("flush", "handoff")


@dataclass(frozen=True, slots=True)
class DiagnosisSection:
    nginx_conf: str = ""
    fpm_conf: tuple[str, ...] = ()
    log_format: str = ""
    escape: str = "default"
    timezone: str = "UTC"  # or "auto": each host's offset from its access lines, else UTC (docs/service.md)
    allowed_lateness_s: float = 5.0
    idle_timeout_s: float = 30.0
    match_window_s: float = 2.0
    evidence_window_s: float = 5.0
    max_state: int = 1_000_000
    episode_gap_s: float = 60.0  # an episode ends after this long (event time) with no incident of its kind
    episode_wait_s: float = 10.0  # reported (opened) this long after its first incident
    episode_interval_s: float = 300.0  # updated this often while it lasts (and at 10, 100, 1000 … incidents)
    episodes_fleet: bool = False  # one episode across hosts (listing them), not one per host


@dataclass(frozen=True, slots=True)
class DeliverySection:
    commit_interval_s: float = 5.0
    exactly_once: bool = False
    max_record_bytes: int = 1_048_576
    # a dead letter above this is cut (raw and value shortened, their sizes kept): the broker refuses records
    # above its max.message.bytes (1 MB by default), and a refused output would be retried forever
    max_dead_letter_bytes: int = 900_000
    on_stop: str = "flush"
    # after SIGTERM/SIGINT the process is gone within this, whatever the client is blocked in (offsets not
    # committed by then are read again by the next member: at least once)
    stop_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class MetricsSection:
    port: int = 9464  # 0 = no endpoint
    host: str = "127.0.0.1"
    progress_interval_s: float = 30.0  # a `service.progress` log line this often


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    kafka: KafkaSection = field(default_factory=KafkaSection)
    inputs: tuple[InputSection, ...] = ()
    outputs: OutputsSection = field(default_factory=OutputsSection)
    diagnosis: DiagnosisSection = field(default_factory=DiagnosisSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    metrics: MetricsSection = field(default_factory=MetricsSection)


_SECTIONS: dict[str, type[Any]] = {
    "kafka": KafkaSection,
    "outputs": OutputsSection,
    "diagnosis": DiagnosisSection,
    "delivery": DeliverySection,
    "metrics": MetricsSection,
}


def _keys(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys() -> list[str]:
    """Every dotted key the configuration accepts (``inputs.N.key`` for the list of inputs)."""
    out = [f"{name}.{key}" for name, cls in _SECTIONS.items() for key in _keys(cls)]
    return out + [f"inputs.N.{key}" for key in _keys(InputSection)]


def load_config(path: str | None, sets: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> ServiceConfig:
    """The one entry point: file, then environment, then ``--set`` flags; validated and frozen."""
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path:
        origin = path
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise UserConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise UserConfigError(f"{path}: not valid TOML: {exc}") from exc
    tree = _tree(raw, origin)
    env = os.environ if environ is None else environ
    for name in sorted(k for k in env if k.startswith(ENV_PREFIX)):
        _override(tree, _env_path(name), env[name], f"environment variable {name}")
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserConfigError(f"--set {item!r}: expected section.key=value")
        _override(tree, key.strip().split("."), value, f"--set {key.strip()}")
    return _build(tree)


# -- the mutable tree, checked as it is filled -------------------------------------------------------------
def _tree(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    tree: dict[str, Any] = {name: {} for name in _SECTIONS}
    tree["inputs"] = []
    for name, body in raw.items():
        if name == "inputs":
            if not isinstance(body, list):
                raise UserConfigError(f"{origin}: 'inputs' must be an array of tables ([[inputs]])")
            for i, item in enumerate(body):
                if not isinstance(item, dict):
                    raise UserConfigError(f"{origin}: inputs[{i}] must be a table")
                tree["inputs"].append({})
                for key, value in item.items():
                    _put(tree, ["inputs", str(i), key], value, origin)
            continue
        if name not in _SECTIONS:
            raise _unknown(name, origin)
        if not isinstance(body, dict):
            raise UserConfigError(f"{origin}: [{name}] must be a table")
        for key, value in body.items():
            _put(tree, [name, key], value, origin)
    return tree


def _env_path(name: str) -> list[str]:
    rest = name[len(ENV_PREFIX) :].lower()
    if rest.startswith("inputs_"):
        index, _, key = rest[len("inputs_") :].partition("_")
        return ["inputs", index, key]
    for section in _SECTIONS:
        if rest.startswith(section + "_"):
            return [section, rest[len(section) + 1 :]]
    return [rest]


def _slot(tree: dict[str, Any], path: list[str], origin: str) -> tuple[dict[str, Any], str, Any]:
    """The dict to write into, the key, and the declared type; unknown paths list the valid keys."""
    dotted = ".".join(path)
    if len(path) == 3 and path[0] == "inputs":
        if not path[1].isdigit():
            raise UserConfigError(f"{origin}: {dotted}: an input is addressed as inputs.N.key (N from 0)")
        index = int(path[1])
        if index > len(tree["inputs"]):
            raise UserConfigError(f"{origin}: {dotted}: there are only {len(tree['inputs'])} inputs")
        if index == len(tree["inputs"]):
            tree["inputs"].append({})  # inputs.<len>.x adds one more input
        hints = _keys(InputSection)
        if path[2] not in hints:
            raise _unknown(dotted, origin)
        return tree["inputs"][index], path[2], hints[path[2]]
    if len(path) == 2 and path[0] in _SECTIONS:
        hints = _keys(_SECTIONS[path[0]])
        if path[1] in hints:
            return tree[path[0]], path[1], hints[path[1]]
    raise _unknown(dotted, origin)


def _unknown(dotted: str, origin: str) -> UserConfigError:
    keys = valid_keys()
    close = difflib.get_close_matches(dotted, keys, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UserConfigError(f"unknown key '{dotted}' in {origin}{hint}; valid keys: {', '.join(keys)}")


def _put(tree: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    target, key, kind = _slot(tree, path, origin)
    target[key] = _check(value, kind, f"{origin}: {'.'.join(path)}")


def _override(tree: dict[str, Any], path: list[str], text: str, origin: str) -> None:
    target, key, kind = _slot(tree, path, origin)
    target[key] = _check(_coerce(text, kind, origin), kind, origin)


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _coerce(text: str, kind: Any, origin: str) -> Any:
    """A string from the environment or a flag → the schema's type."""
    if kind in (str, Secret):
        return text
    if kind is bool:
        low = text.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise UserConfigError(f"{origin}: expected true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            raise UserConfigError(f"{origin}: expected {_TYPE_NAMES[kind]}, got {text!r}") from None
    # a list: a TOML array (["a", "b"]) or comma-separated words
    if text.strip().startswith("["):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise UserConfigError(f"{origin}: not a TOML array: {exc}") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _check(value: Any, kind: Any, where: str) -> Any:
    if kind is Secret:
        kind = str
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind in _TYPE_NAMES:
        if type(value) is not kind:
            raise UserConfigError(f"{where}: expected {_TYPE_NAMES[kind]}, got {_describe(value)}")
        return value
    # tuple[str, ...]: a list of strings; one string is accepted as a list of one
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserConfigError(f"{where}: expected a list of strings, got {_describe(value)}")
    return tuple(value)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, Secret) else "a secret"


# -- frozen result and the checks that need several keys ----------------------------------------------------
def _build(tree: dict[str, Any]) -> ServiceConfig:
    kafka_raw = dict(tree["kafka"])
    if "sasl_password" in kafka_raw:
        kafka_raw["sasl_password"] = Secret(kafka_raw["sasl_password"])
    if "bootstrap_servers" in kafka_raw:  # "a:9092,b:9092" in one string is common in env vars
        kafka_raw["bootstrap_servers"] = tuple(
            s.strip() for item in kafka_raw["bootstrap_servers"] for s in item.split(",") if s.strip()
        )
    config = ServiceConfig(
        kafka=KafkaSection(**kafka_raw),
        inputs=tuple(InputSection(**item) for item in tree["inputs"]),
        outputs=OutputsSection(**tree["outputs"]),
        diagnosis=DiagnosisSection(**tree["diagnosis"]),
        delivery=DeliverySection(**tree["delivery"]),
        metrics=MetricsSection(**tree["metrics"]),
    )
    _validate(config)
    return config


def _choice(where: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise UserConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}")


def _validate(c: ServiceConfig) -> None:
    if not c.kafka.bootstrap_servers:
        raise UserConfigError("kafka.bootstrap_servers: give at least one host:port")
    _choice("kafka.client", c.kafka.client, backend_names())  # registered backends (io/kafka/client.py)
    _choice("kafka.security_protocol", c.kafka.security_protocol, SECURITY_PROTOCOLS)
    _choice("kafka.sasl_mechanism", c.kafka.sasl_mechanism, SASL_MECHANISMS)
    _choice("kafka.auto_offset_reset", c.kafka.auto_offset_reset, ("earliest", "latest"))
    if c.kafka.security_protocol.startswith("SASL") and not c.kafka.sasl_mechanism:
        raise UserConfigError(f"kafka.sasl_mechanism: required with security_protocol {c.kafka.security_protocol}")
    if not c.inputs:
        raise UserConfigError("no [[inputs]]: name at least one topic to read (inputs.0.topic)")
    for i, inp in enumerate(c.inputs):
        where = f"inputs.{i}"
        if not inp.topic:
            raise UserConfigError(f"{where}.topic: required")
        _choice(f"{where}.type", inp.type, ("auto", *log_types()))  # plugin types too
        _choice(f"{where}.envelope", inp.envelope, ENVELOPES)
        mode = inp.host_from.partition(":")[0]
        if (
            inp.host_from not in ("auto", "envelope", "key")
            and mode not in ("header", "fixed")
            or inp.host_from in ("header:", "fixed:")
        ):
            raise UserConfigError(
                f"{where}.host_from: {inp.host_from!r} is not one of 'auto', 'envelope', "
                "'key', 'header:<name>', 'fixed:<host name>'"
            )
    topics = [inp.topic for inp in c.inputs]
    if len(set(topics)) != len(topics):
        raise UserConfigError("inputs: the same topic is listed twice; give each topic one [[inputs]] table")
    if not c.outputs.incidents_topic or not c.outputs.dead_letter_topic:
        raise UserConfigError("outputs.incidents_topic and outputs.dead_letter_topic are required")
    if set(topics) & {
        c.outputs.incidents_topic,
        c.outputs.events_topic,
        c.outputs.dead_letter_topic,
        c.outputs.episodes_topic,
    }:
        raise UserConfigError("outputs: an output topic is also an input topic (the service would read its output)")
    try:
        if c.diagnosis.timezone != "auto":
            ZoneInfo(c.diagnosis.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserConfigError(
            f"diagnosis.timezone: unknown timezone {c.diagnosis.timezone!r} "
            "(use an IANA name like Europe/Paris, or auto)"
        ) from None
    if c.diagnosis.timezone == "auto" and c.kafka.repartition:
        raise UserConfigError(
            'diagnosis.timezone = "auto" is not supported with kafka.repartition = true yet: name '
            "the hosts' timezone (an IANA name like America/New_York)"
        )
    _choice("diagnosis.escape", c.diagnosis.escape, ("default", "json", "none"))
    _choice("delivery.on_stop", c.delivery.on_stop, ON_STOP)
    _choice("outputs.missing_topics", c.outputs.missing_topics, ("create", "refuse"))
    for where, number in (
        ("diagnosis.allowed_lateness_s", c.diagnosis.allowed_lateness_s),
        ("diagnosis.idle_timeout_s", c.diagnosis.idle_timeout_s),
        ("diagnosis.match_window_s", c.diagnosis.match_window_s),
        ("diagnosis.evidence_window_s", c.diagnosis.evidence_window_s),
        ("delivery.commit_interval_s", c.delivery.commit_interval_s),
        ("kafka.session_timeout_s", c.kafka.session_timeout_s),
        ("kafka.connect_backoff_max_s", c.kafka.connect_backoff_max_s),
        ("metrics.progress_interval_s", c.metrics.progress_interval_s),
        ("delivery.stop_timeout_s", c.delivery.stop_timeout_s),
    ):
        if not math.isfinite(number):
            raise UserConfigError(f"{where}: must be a finite number of seconds, got {number}")
        if number < 0 or (number == 0 and where.startswith(("delivery", "kafka", "metrics"))):
            raise UserConfigError(f"{where}: must be positive, got {number}")
    if c.diagnosis.max_state <= 0 or c.delivery.max_record_bytes <= 0:
        raise UserConfigError("diagnosis.max_state and delivery.max_record_bytes must be positive")
    if c.delivery.max_dead_letter_bytes < 4096:
        raise UserConfigError(
            "delivery.max_dead_letter_bytes: at least 4096 (a dead letter's reason, source and context must fit)"
        )
    if not 0 <= c.metrics.port <= 65535:
        raise UserConfigError(f"metrics.port: {c.metrics.port} is not a TCP port (0 turns the endpoint off)")


def redacted(config: ServiceConfig) -> dict[str, Any]:
    """The configuration as plain data for a log line; the secret stays ``***``."""
    return typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Secret):
        return "***"
    return value
