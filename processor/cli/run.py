"""``badgateway run``: the service's command body (configuration, signals, the stop deadline)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any

from processor.core.errors import KafkaError
from processor.io.kafka.client import ClientError
from processor.io.log import configure
from processor.runners.service import EXIT_STOP_TIMEOUT, Service
from processor.runners.service_config import load_config


def exit_after(seconds: float, log: Any) -> threading.Timer:
    """The process is gone ``seconds`` after a stop signal, whatever the main thread is blocked in (a client
    waiting for metadata or a broker does not look at the stop flag); what is not committed is read again."""

    def expire() -> None:
        log.error("service.stop_timeout", stop_timeout_s=seconds)
        os._exit(EXIT_STOP_TIMEOUT)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def run_command(args: argparse.Namespace) -> int:
    """``badgateway run``: config → service → exit 0 on SIGTERM/SIGINT after everything is emitted."""
    configure()
    config = load_config(getattr(args, "config", None), getattr(args, "set", []) or [])
    service = Service(config)
    deadline: list[threading.Timer] = []

    def stop(signum: int, frame: Any) -> None:
        service.stop()
        if deadline:  # a second signal: the operator does not want to wait
            os._exit(EXIT_STOP_TIMEOUT)
        deadline.append(exit_after(config.delivery.stop_timeout_s, service.log))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        return service.run()
    except ClientError as exc:
        raise KafkaError(f"kafka: {exc}") from exc
