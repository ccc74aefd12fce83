"""The service's metrics tell the truth while windows are held (#18)."""

from __future__ import annotations

import time

from processor.core.events import Counters
from processor.core.watermark import NO_WATERMARK
from processor.io.metrics import Metrics


def gauge(m: Metrics, name: str) -> float:
    value = m.registry.get_sample_value(name)
    assert value is not None
    return value


def test_a_watermark_held_back_by_an_unread_partition_still_shows_a_lag() -> None:
    # a partition not read yet holds the watermark at "no time": windows are held, the lag is not 0
    m = Metrics()
    oldest_ms = int(time.time() * 1000) - 40_000
    m.sync(Counters(), 5, NO_WATERMARK, 3, oldest_ms)
    assert gauge(m, "badgateway_windows_held") == 3
    assert gauge(m, "badgateway_watermark_lag_seconds") >= 40
    assert m.lag_s >= 40


def test_nothing_held_no_lag_and_a_time_watermark_gives_wall_clock_minus_it() -> None:
    m = Metrics()
    m.sync(Counters(), 0, NO_WATERMARK, 0, None)
    assert gauge(m, "badgateway_watermark_lag_seconds") == 0 and gauge(m, "badgateway_windows_held") == 0
    m.sync(Counters(), 1, int(time.time() * 1000) - 8_000, 1, int(time.time() * 1000) - 2_000)
    assert 8 <= gauge(m, "badgateway_watermark_lag_seconds") < 60


def test_commits_are_counted_for_the_progress_line() -> None:
    m = Metrics()
    m.committed()
    m.committed()
    assert m.commit_count == 2
