"""A one-line progress bar on stderr for `badgateway replay`: bytes done of total, lines/s, ETA.

No dependency: one `\\r`-rewritten line is all a replay needs, and a library (tqdm, rich) would be a
runtime dependency of the Kafka service too. The bar draws only on a terminal, so piped or logged
stderr stays clean, and redraws at most ~10 times a second so it costs nothing measurable.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

REDRAW_INTERVAL_S = 0.1
_CLEAR_LINE = "\r\x1b[K"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_line(bytes_done: int, total_bytes: int, lines: int, elapsed_s: float, width: int = 80) -> str:
    """The bar's text for a terminal `width` columns wide (pure; the caller adds `\\r`).

    `total_bytes` 0 means unknown (a pipe): no bar, no percentage, no ETA.
    """
    rate = lines / elapsed_s if elapsed_s > 0 else 0.0
    byte_rate = bytes_done / elapsed_s if elapsed_s > 0 else 0.0
    if total_bytes <= 0:
        return f"{_size(bytes_done)}  {lines:,} lines  {rate:,.0f} lines/s"[: width - 1]
    fraction = min(bytes_done / total_bytes, 1.0)
    eta = _clock((total_bytes - bytes_done) / byte_rate) if byte_rate > 0 and fraction < 1 else "--:--"
    text = f" {fraction * 100:3.0f}% {_size(bytes_done)}/{_size(total_bytes)}  {rate:,.0f} lines/s  ETA {eta}"
    bar_width = min(40, width - 1 - len(text) - 2)
    if bar_width < 5:  # a narrow terminal: numbers matter more than the bar
        return text.strip()[: width - 1]
    filled = int(bar_width * fraction)
    return "[" + "#" * filled + "-" * (bar_width - filled) + "]" + text


class Progress:
    """Progress of a replay over `total_bytes` of input files (as on disk, compressed or not).

    Feed it with `advance(bytes_, lines)` per chunk or batch (not per line: a call still costs a clock
    read). `clear()` before printing anything else to stderr; `close()` (or leaving the `with` block)
    erases the bar so the closing summary starts on a clean line.
    """

    def __init__(
        self,
        total_bytes: int,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_bytes = total_bytes
        self.bytes_done = 0
        self.lines = 0
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._started = clock()
        self._next_draw = self._started  # the first advance draws at once
        self._shown = False
        self.enabled = _is_terminal(self._stream) if enabled is None else enabled
        self._line_count: Callable[[], int] | None = None

    def count_lines(self, lines_so_far: Callable[[], int]) -> None:
        """Take the line count from ``lines_so_far`` at each redraw: the reader counts bytes as it reads, the
        lines are counted where they are split, and asking there once per redraw costs nothing per line."""
        self._line_count = lines_so_far

    def advance(self, bytes_: int = 0, lines: int = 0) -> None:
        """Count `bytes_` more input bytes and `lines` more lines; redraw if due."""
        self.bytes_done += bytes_
        self.lines += lines
        if self.enabled:
            now = self._clock()
            if now >= self._next_draw:
                self._next_draw = now + REDRAW_INTERVAL_S
                self._draw(now)

    def _draw(self, now: float) -> None:
        width = _columns(self._stream)
        if self._line_count is not None:
            self.lines = self._line_count()
        line = render_line(self.bytes_done, self.total_bytes, self.lines, now - self._started, width)
        self._stream.write(_CLEAR_LINE + line)
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the bar (it comes back at the next due redraw)."""
        if self._shown:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._shown = False
            self._next_draw = self._clock()

    def close(self) -> None:
        """Erase the bar for good."""
        self.clear()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _columns(stream: TextIO) -> int:
    # Ask stderr itself: shutil.get_terminal_size() asks stdout, which replay often pipes to a file.
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


def _is_terminal(stream: TextIO) -> bool:
    # TERM=dumb (Emacs shells, some CI consoles) can't move the cursor back: \r\x1b[K would pile up.
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False
