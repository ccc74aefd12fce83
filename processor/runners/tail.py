"""The file side of ``badgateway follow``: tail live log files like ``tail -F``, rotation- and truncation-aware.

Rotation by rename (the old file is read to its end, then the new one from its start), copytruncate (the
file shrank, or its first bytes changed because it was truncated and written again past where we were between
two polls: read again from 0), files that appear later (paths and globs are re-checked every poll), and a
small state file of byte offsets so a restart neither re-reads nor skips lines: on a clean stop every window is
closed and the offsets of the end are saved; while running, saved offsets never pass a line still held in a
window, so a crash re-reads (and re-emits, with the same ``event.id``) rather than loses.

Work per poll is bounded: at most ``_READ_BYTES`` of each file (a burst is read over several polls, without
sleeping between them), and a line longer than ``MAX_LINE_BYTES`` is dead-lettered with its length and first
bytes, as ``replay`` and ``filter`` do.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from processor.core.errors import InputError
from processor.core.events import DeadLetter, Record, SourceRef
from processor.io.files import MAX_LINE_BYTES
from processor.io.sinks import OutputError
from processor.pipeline import Output, Pipeline
from processor.runners.replay import base_name
from processor.runners.stdin_filter import LineBuffer, OverLong

_READ_BYTES = 1 << 20  # of each file per poll
# the first bytes of a file, compared on every poll: the same inode and a size past our offset, but other first
# bytes, is a file truncated and written again between two polls
_FINGERPRINT_BYTES = 256
_STATE_MAX_BYTES = 64 << 20


@dataclass
class Tailed:
    """One followed path: its open file, where we are in it, and the line numbers of what we read."""

    path: str
    fh: BinaryIO | None = None
    inode: int | None = None
    offset: int = 0  # bytes read
    line_no: int = 0
    line_start: int = 0  # where the line not yet complete starts (offset minus what the buffer holds)
    buffer: LineBuffer = field(default_factory=LineBuffer)
    fingerprint: bytes = b""
    log_type: str | None = None
    access_format: str | None = None
    # (line number, byte offset where that line starts), for lines that may still be held in a window
    starts: deque[tuple[int, int]] = field(default_factory=deque)


class Follower:
    """Polls paths, feeds new complete lines to the pipeline, hands outputs to ``emit``."""

    def __init__(
        self,
        pipeline: Pipeline,
        patterns: list[str],
        *,
        host: str | None,
        forced_type: str | None,
        format_by_base: dict[str, str],
        forced_format: str | None,
        state_file: str | None,
        clock: Callable[[], float] = time.time,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.pipeline = pipeline
        self.max_line_bytes = max_line_bytes
        self.behind = False  # the last poll stopped before the end of a file: poll again without sleeping
        self.clock = clock  # seconds: the wall clock, or a test's
        self.patterns = patterns
        self.host = host
        self.forced_type = forced_type
        self.format_by_base = format_by_base
        self.forced_format = forced_format
        self.state_file = state_file
        self.files: dict[str, Tailed] = {}
        self._saved = self._load_state()

    def _load_state(self) -> dict[str, dict[str, int]]:
        """The saved offsets; an empty file is no state yet, anything not written by ``save_state`` is refused
        (reading from a guessed offset would lose or repeat lines)."""
        if not self.state_file or not os.path.exists(self.state_file):
            return {}
        try:
            with open(self.state_file, "rb") as fh:
                text = fh.read(_STATE_MAX_BYTES + 1)
        except OSError as err:
            raise InputError(self.state_file, (err.strerror or str(err)).lower()) from err
        if len(text) > _STATE_MAX_BYTES:
            raise InputError(self.state_file, f"state file larger than {_STATE_MAX_BYTES >> 20} MiB")
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            raise InputError(self.state_file, "not a follow state file (not JSON)", line) from None
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, dict):
            raise InputError(self.state_file, 'not a follow state file (expected {"files": {PATH: {…}}})')
        for path, entry in files.items():
            if not isinstance(entry, dict) or not all(
                type(entry.get(key, 0)) is int and entry.get(key, 0) >= 0 for key in ("inode", "offset", "line")
            ):
                raise InputError(
                    self.state_file, f"the entry of {path!r}: inode, offset and line must be whole numbers, 0 or more"
                )
        return files

    def save_state(self, *, at_end: bool) -> None:
        if not self.state_file:
            return
        held = self.pipeline.held_offsets()
        files: dict[str, dict[str, int]] = {}
        for path, t in self.files.items():
            offset, line_no = t.line_start, t.line_no
            if not at_end and path in held:
                for ln, start in t.starts:
                    if ln >= held[path]:
                        offset, line_no = start, ln - 1
                        break
            files[path] = {"inode": t.inode or 0, "offset": offset, "line": line_no}
        tmp = self.state_file + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"files": files}, fh)
            os.replace(tmp, self.state_file)  # atomic: a crash leaves the old or the new state, never half
        except OSError as err:
            raise OutputError(self.state_file, f"cannot save the state: {(err.strerror or str(err)).lower()}") from err

    def _paths(self) -> list[str]:
        return self.matching(self.patterns)

    @staticmethod
    def matching(patterns: list[str]) -> list[str]:
        """The files the paths and globs name now."""
        found: list[str] = []
        for pattern in patterns:
            matches = glob.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]
            for m in matches:
                if os.path.isdir(m):  # a directory: its live logs, now and as they appear (#18)
                    found.extend(
                        f
                        for f in (os.path.join(m, n) for n in sorted(os.listdir(m)))
                        if os.path.isfile(f) and live_log(f)
                    )
                elif os.path.isfile(m):
                    found.append(m)
        return sorted(set(found))

    def poll(self) -> list[Output]:
        out: list[Output] = []
        self.behind = False
        for path in self._paths():
            if path not in self.files:
                self.files[path] = self._open_new(path)
        # a file with lines not read yet holds the windows while the others are read; read to its end, it is
        # idle once quiet (the wall clock then closes the windows: quiet logs still give their incidents)
        for t in self.files.values():
            if _unread(t):
                self.pipeline.input_behind(t.path, True)
        for t in self.files.values():
            out.extend(self._read(t))
            self.pipeline.input_behind(t.path, False)
        out.extend(self.pipeline.tick(int(self.clock() * 1000)))
        return out

    def _open_new(self, path: str) -> Tailed:
        t = Tailed(path, buffer=LineBuffer(self.max_line_bytes))
        saved = self._saved.get(path)
        try:
            st = os.stat(path)
        except OSError:
            return t
        t.fh, t.inode = open(path, "rb"), st.st_ino
        if saved and saved.get("inode") == st.st_ino and saved.get("offset", 0) <= st.st_size:
            t.offset, t.line_no = int(saved["offset"]), int(saved.get("line", 0))
            t.line_start = t.offset
            t.fh.seek(t.offset)
            _remember_head(t)
        t.access_format = self.forced_format or self.format_by_base.get(base_name(path))
        t.log_type = self.forced_type
        return t

    def _read(self, t: Tailed) -> list[Output]:
        out: list[Output] = []
        if t.fh is None:
            return out
        if _rewritten(t):
            out.extend(self._restart(t))  # truncated, then written past our offset before this poll
        lines, at_end = self._drain(t)
        out.extend(lines)
        if not at_end:
            self.behind = True
            return out  # the rest next poll; a rotation waits until the old file is read to its end
        try:
            st = os.stat(t.path)
        except OSError:
            return out  # renamed away and not yet recreated: keep the old handle
        if st.st_ino != t.inode:
            # rotated by rename: the old file is finished (we just read it to its end); start the new one
            out.extend(self._finish_line(t))
            t.fh.close()
            t.fh, t.inode = open(t.path, "rb"), st.st_ino
            out.extend(self._restart(t))
            lines, at_end = self._drain(t)
            out.extend(lines)
            self.behind = self.behind or not at_end
        elif st.st_size < t.offset:
            # copytruncate: the file was emptied under us; what is there now is new
            out.extend(self._restart(t))
            lines, at_end = self._drain(t)
            out.extend(lines)
            self.behind = self.behind or not at_end
        return out

    def _restart(self, t: Tailed) -> list[Output]:
        """Read ``t`` again from its start (what is there now is new); a line left unfinished is not lost."""
        out = self._finish_line(t)
        assert t.fh is not None
        t.fh.seek(0)
        t.offset = t.line_start = 0
        t.fingerprint = b""
        t.buffer = LineBuffer(self.max_line_bytes)
        return out

    def _finish_line(self, t: Tailed) -> list[Output]:
        last = t.buffer.flush()
        return [] if last is None else self._line(t, last)

    def _drain(self, t: Tailed) -> tuple[list[Output], bool]:
        """Up to ``_READ_BYTES`` of new lines; whether the end of the file was reached."""
        out: list[Output] = []
        if t.fh is None:
            return out, True
        chunk = t.fh.read(_READ_BYTES)
        t.offset += len(chunk)
        for raw in t.buffer.feed(chunk):
            out.extend(self._line(t, raw))
        while len(t.starts) > 100_000:
            t.starts.popleft()
        _remember_head(t)
        return out, len(chunk) < _READ_BYTES

    def _line(self, t: Tailed, raw: bytes | OverLong) -> list[Output]:
        t.line_no += 1
        start = t.line_start
        t.line_start += (raw.length if isinstance(raw, OverLong) else len(raw)) + 1
        t.starts.append((t.line_no, start))
        source = SourceRef(t.path, t.line_no)
        if isinstance(raw, OverLong):
            # in = parsed + dead-lettered: a line past the cap is counted and dead-lettered, its head kept
            self.pipeline.counters.lines_in += 1
            self.pipeline.counters.lines_dead_lettered += 1
            reason = f"line is {raw.length} bytes, longer than {self.max_line_bytes} bytes: not a text log?"
            head = raw.head.decode("utf-8", "surrogateescape") + "…"
            return [Output("dead_letter", DeadLetter(source, reason, head, t.log_type), source)]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        text = raw.decode("utf-8", "surrogateescape")
        if t.log_type is None:
            found = self.pipeline.parser.detect(text)
            if found is not None:
                t.log_type, fmt = found
                t.access_format = t.access_format or fmt
        return self.pipeline.feed(Record(text, source, t.log_type, self.host, t.access_format))


def _remember_head(t: Tailed) -> None:
    """Keep the file's first bytes (up to ``_FINGERPRINT_BYTES`` of what was read) to recognise it later."""
    if t.fh is not None and len(t.fingerprint) < _FINGERPRINT_BYTES and t.offset > len(t.fingerprint):
        t.fingerprint = os.pread(t.fh.fileno(), min(_FINGERPRINT_BYTES, t.offset), 0)


def _rewritten(t: Tailed) -> bool:
    """Whether the file's first bytes are no longer those read: it was truncated and written again."""
    if t.fh is None or not t.fingerprint:
        return False
    try:
        return os.pread(t.fh.fileno(), len(t.fingerprint), 0) != t.fingerprint
    except OSError:
        return False


def live_log(path: str) -> bool:
    """A file of a followed directory worth tailing: not a rotated copy (``x.log.1``) nor an archive."""
    name = os.path.basename(path)
    return base_name(path) == name and not name.endswith((".gz", ".bz2", ".xz", ".zst", ".tmp"))


def _unread(t: Tailed) -> bool:
    """Whether the file has bytes past where we are (or was replaced): lines not read yet."""
    try:
        st = os.stat(t.path)
    except OSError:
        return False
    return t.fh is None or st.st_ino != t.inode or st.st_size != t.offset
