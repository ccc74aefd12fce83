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
    # kafka-python logs through stdlib logging: keep its warnings (broker lost, rebalance), drop its chatter
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)


def get_logger(name: str = "badgateway") -> Any:
    """A bound structlog logger (``log.info("event", key=value)``)."""
    return structlog.get_logger(name)
