"""The Kafka service's idleness on the real broker (#18): a partition is idle only at its end offset.

One host on 4 partitions: its lines are all on one partition of each topic, the three others stay empty. Empty
and at their end offset, they hold no window (before #18 each held the watermark for ``idle_timeout``: with an
hour of it, no incident came out while the service ran).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.runners.test_service import (  # noqa: F401  (the fixtures: the broker, the topics, the client)
    ServiceProc,
    Setup,
    check,
    client,
    expected_incidents,
    scenario,
    setup,
)

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


@pytest.mark.parametrize("setup", [4], indirect=True)
def test_empty_partitions_at_their_end_hold_no_window(setup: Setup) -> None:  # noqa: F811 (the fixture)
    logs = [item for item in scenario(120) if item[1] == "web-2"]
    expected = expected_incidents(setup, logs)
    svc = ServiceProc(setup, "svc", "diagnosis.idle_timeout_s=3600", "metrics.progress_interval_s=0.5")
    setup.produce(logs)
    ends = setup.end_offsets()
    assert sum(1 for v in ends.values() if v) == 3  # one partition of each topic has the host's lines
    svc.wait_caught_up(ends)
    # the windows the data partitions' progress closes come out while the service runs (all but the last three,
    # which wait for the data partitions, and the error log's last entry, to go quiet: an hour here, or SIGTERM)
    deadline = time.monotonic() + 60
    while len({i["event"]["id"] for i in setup.read("incidents")}) < len(expected) - 3:
        assert time.monotonic() < deadline, "empty partitions still hold the windows"
        time.sleep(0.5)
    # the last windows are held: the metrics say so, and so does the progress line
    time.sleep(1)
    metrics = svc.metrics()
    assert metrics["badgateway_windows_held"][0][1] > 0
    assert metrics["badgateway_watermark_lag_seconds"][0][1] > 0
    progress = [json.loads(line) for line in svc.log_path.read_text().splitlines() if "service.progress" in line]
    assert progress and progress[-1]["records_in"] == sum(ends.values()) and progress[-1]["windows_held"] > 0
    assert {"incidents", "watermark_lag_s", "commits"} <= set(progress[-1])
    svc.terminate()
    check(setup, expected, exact_once=True)
