"""Event time as the outputs write it: ISO 8601 UTC with milliseconds (``2026-11-24T07:41:42.000Z``)."""

from __future__ import annotations

import time
from functools import lru_cache


def iso_ms(ts_ms: int) -> str:
    second, ms = divmod(ts_ms, 1000)
    return iso_second(second) + MS_Z[ms]


MS_Z = tuple(f"{ms:03d}Z" for ms in range(1000))  # iso_ms's tail: a lookup, not a format, per call


@lru_cache(maxsize=1024)
def iso_second(second: int) -> str:
    # an incident formats two or three times of the same second or so: strftime once per second
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
