"""Where each assigned partition stands: behind its end offset (holding the join's windows) or caught up, and the
consumer position and lag metrics."""

from __future__ import annotations

from processor.io.kafka.client import TP, Consumer
from processor.io.kafka.inputs import CommitPlanner
from processor.io.metrics import Metrics


def behind(consumer: Consumer, planner: CommitPlanner) -> dict[TP, bool]:
    """Each assigned partition: records not read yet (position below the end offset: it holds the windows however
    long the catch-up takes) or at its end offset (idle once quiet; at once if it never had a record), as Kafka
    Streams' ``max.task.idle.ms``. An end offset or a position not known yet (a partition not fetched yet): behind."""
    behind_of: dict[TP, bool] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        processed, fetched = planner.next.get(tp), consumer.position(tp)
        position = max(processed, fetched) if processed is not None and fetched is not None else processed
        behind_of[tp] = high is None or position is None or position < high
    return behind_of


def lagging(consumer: Consumer, planner: CommitPlanner, metrics: Metrics) -> bool:
    """Some partition has records we could not fetch (broker lost): processing time must not run. Sets the
    position and lag gauges on the way."""
    lag = False
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        nxt = planner.next.get(tp)
        if nxt is not None:
            metrics.consumer_position.labels(tp.topic, str(tp.partition)).set(nxt)
        if high is not None and nxt is not None:
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, high - nxt))
            lag = lag or high > nxt
    return lag
