"""Prometheus metrics of ``badgateway run``: its own registry, served by prometheus-client's HTTP server.

The pipeline's counters are plain ints in the core; ``Metrics.sync`` turns their growth into Prometheus
counter increments (the core knows nothing of Prometheus, and a rebuilt pipeline restarts at zero).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from processor.core.errors import UserConfigError
from processor.core.events import Counters


class Metrics:
    """Every series the service exports; ``serve`` starts the endpoint (port 0: no endpoint)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records_in = Counter("badgateway_records_in", "Kafka records consumed", ["topic", "type"], registry=r)
        self.lines_parsed = Counter("badgateway_lines_parsed", "lines parsed into events", registry=r)
        self.dead_lettered = Counter(
            "badgateway_dead_lettered", "records sent to the dead-letter topic", ["stage"], registry=r
        )
        self.incidents = Counter("badgateway_incidents", "incidents emitted", ["cause", "pool"], registry=r)
        self.late_records = Counter("badgateway_late_records", "records behind the watermark", registry=r)
        self.join_state = Gauge("badgateway_join_state_size", "failures and evidence held by the join", registry=r)
        self.windows_held = Gauge("badgateway_windows_held", "failures waiting in open windows", registry=r)
        self.watermark_lag = Gauge(
            "badgateway_watermark_lag_seconds", "wall clock minus the join's event-time watermark", registry=r
        )
        self.consumer_lag = Gauge(
            "badgateway_consumer_lag", "records behind the partition's end", ["topic", "partition"], registry=r
        )
        self.consumer_position = Gauge(
            "badgateway_consumer_position", "next offset the service will process", ["topic", "partition"], registry=r
        )
        self.commits = Counter("badgateway_commits", "offset commits", registry=r)
        self.rebuilds = Counter(
            "badgateway_rebuilds", "pipeline rebuilds (rebalance, delivery failure)", ["reason"], registry=r
        )
        self._last_commit = time.monotonic()
        commit_age = Gauge("badgateway_last_commit_age_seconds", "seconds since the last offset commit", registry=r)
        commit_age.set_function(lambda: time.monotonic() - self._last_commit)
        self._seen: dict[str, int] = {}
        self.commit_count = 0
        self.lag_s = 0.0  # as last set: for the progress line
        self._incident_series: dict[tuple[str, str], Any] = {}

    def serve(self, host: str, port: int) -> None:
        """Start the endpoint; a port that cannot be bound (in use, privileged) is a configuration error."""
        if port:
            try:
                start_http_server(port, addr=host, registry=self.registry)
            except OSError as exc:
                raise UserConfigError(
                    f"metrics.port {port} on {host}: {(exc.strerror or str(exc)).lower()}"
                    " (another process has it? set metrics.port, 0 turns the endpoint off)"
                ) from None

    def committed(self) -> None:
        self.commits.inc()
        self.commit_count += 1
        self._last_commit = time.monotonic()

    def incident(self, incident: dict[str, Any]) -> None:
        cause = str(incident.get("badgateway", {}).get("cause") or "unknown")
        pool = (incident.get("php_fpm") or {}).get("pool") or ""
        child = self._incident_series.get((cause, pool))
        if child is None:  # labels() costs more than the increment: one lookup per series
            child = self._incident_series[(cause, pool)] = self.incidents.labels(cause, pool)
        child.inc()

    def sync(
        self,
        counters: Counters,
        state_size: int,
        watermark_ms: int | None,
        windows_held: int = 0,
        oldest_held_ms: int | None = None,
    ) -> None:
        """Add what the pipeline counted since the last call; set the gauges.

        The watermark lag is the wall clock minus the watermark; while windows are held and the watermark is not
        a time yet (a partition not read holds it back), minus the oldest held window's time: never 0 then."""
        for name, metric in (("lines_parsed", self.lines_parsed), ("late_records", self.late_records)):
            value = getattr(counters, name)
            grown = value - self._seen.get(name, 0)
            if grown > 0:
                metric.inc(grown)
            self._seen[name] = value
        value = counters.lines_dead_lettered
        grown = value - self._seen.get("dead", 0)
        if grown > 0:
            self.dead_lettered.labels("parse").inc(grown)
        self._seen["dead"] = value
        self.join_state.set(state_size)
        self.windows_held.set(windows_held)
        now_s = time.time()
        if watermark_ms is not None and abs(watermark_ms) < 2**61:
            lag_s = now_s - watermark_ms / 1000
        elif windows_held and oldest_held_ms is not None:
            lag_s = now_s - oldest_held_ms / 1000
        else:
            lag_s = 0.0  # nothing held: nothing waits for the watermark
        if windows_held and oldest_held_ms is not None:
            lag_s = max(lag_s, now_s - oldest_held_ms / 1000, 0.001)
        self.lag_s = lag_s
        self.watermark_lag.set(lag_s)

    def partitions_revoked(self, partitions: list[tuple[str, int]]) -> None:
        """A partition that moved to another member is no longer ours to report."""
        for topic, partition in partitions:
            for gauge in (self.consumer_lag, self.consumer_position):
                try:
                    gauge.remove(topic, str(partition))
                except KeyError:
                    pass

    def pipeline_rebuilt(self, reason: str) -> None:
        self.rebuilds.labels(reason).inc()
        self._seen.clear()  # a new pipeline counts from zero
