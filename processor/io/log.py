"""The service's own log lines through structlog: JSON lines, or the console renderer on a terminal.

Configured once by ``configure`` at the start of ``badgateway run`` (the CLI is the only caller).
Secrets never get here: the configuration is logged through ``processor.runners.service_config.redacted``, and a
``Secret`` renders as ``***`` wherever it ends up.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from processor.io.kafka.settings import Secret


def _mask_secrets(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # a Secret passed by mistake as a value is masked before any renderer sees it
    for key, value in event.items():
        if isinstance(value, Secret):
            event[key] = "***"
    return event


def configure(*, json: bool | None = None, level: int = logging.INFO) -> None:
    """JSON lines when stderr is not a terminal (or ``json=True``), a coloured console otherwise."""
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    route_stdlib_logging(renderer, level=logging.WARNING)
    # kafka-python: keep its errors (broker unreachable, connection lost), drop its warnings' chatter
    logging.getLogger("kafka").setLevel(logging.ERROR)


def route_stdlib_logging(renderer: Any, *, level: int = logging.WARNING) -> None:
    """One log stream: what libraries log through stdlib ``logging`` (kafka-python; confluent-kafka's
    librdkafka lines come through ``confluent_client``'s logger adapter) is rendered by structlog's renderer
    on the same stderr, with the library's logger name, instead of plain lines between the JSON ones."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask_secrets,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str = "badgateway") -> Any:
    """A bound structlog logger (``log.info("event", key=value)``)."""
    return structlog.get_logger(name)
