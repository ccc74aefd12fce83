"""Event time: a logged time as epoch milliseconds (``local_ms`` for a time without an offset, in its log's zone;
``aware_ms``), the range an incident can carry (``in_range``), and ISO 8601 UTC with milliseconds as the outputs
write it (``iso_ms``: ``2026-11-24T07:41:42.000Z``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Final


def iso_ms(ts_ms: int) -> str:
    second, ms = divmod(ts_ms, 1000)
    return iso_second(second) + MS_Z[ms]


MS_Z = tuple(f"{ms:03d}Z" for ms in range(1000))  # iso_ms's tail: a lookup, not a format, per call


@lru_cache(maxsize=1024)
def iso_second(second: int) -> str:
    # an incident formats two or three times of the same second or so: strftime once per second
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))


@lru_cache(maxsize=4096)
def local_ms(dt: datetime, tz: tzinfo) -> int:
    return int(dt.replace(tzinfo=tz).timestamp() * 1000)


@lru_cache(maxsize=4096)
def aware_ms(dt: datetime) -> int:
    # consecutive lines share their second: the grammars hand back the same datetime, the cache hits
    return int(dt.timestamp() * 1000)


# the event times an incident can carry (`@timestamp` is ISO 8601 with a 4-digit year): a local time at 9999's
# last hours is year 10000 in UTC, one at year 1's first hours is year 0
MIN_TS_MS: Final = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_TS_MS: Final = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
OUT_OF_RANGE: Final = "entry's time is outside years 1-9999 in UTC"


def in_range(ts_ms: int | None) -> int | None:
    """``ts_ms`` when an incident can carry it, else None."""
    return ts_ms if ts_ms is not None and MIN_TS_MS <= ts_ms <= MAX_TS_MS else None
