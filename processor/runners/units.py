"""How ``replay --workers`` shares the input among parse processes: a whole file per unit, or, for a big plain
(uncompressed, single-line) access log, byte ranges cut at line starts, each read with its true line numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from processor.core.events import NGINX_ACCESS, PHP_FPM_ACCESS, Record, SourceRef
from processor.io.files import CHUNK_BYTES
from processor.runners.replay import Plan

_SPLIT_BYTES = 8 << 20  # a plain single-line log bigger than this is parsed in byte-range chunks
_SPLITTABLE = (NGINX_ACCESS, PHP_FPM_ACCESS)


@dataclass(frozen=True, slots=True)
class Unit:
    """One worker's share: a whole file, or the lines starting in [start, end) of a big plain one."""

    plan_index: int
    start: int = 0
    end: int | None = None  # None: the whole file, any compression


def units_for(plans: list[Plan], workers: int) -> list[Unit]:
    units: list[Unit] = []
    for i, plan in enumerate(plans):
        f = plan.file
        if f.compression != "none" or plan.log_type not in _SPLITTABLE or f.size_bytes < _SPLIT_BYTES:
            units.append(Unit(i))
            continue
        step = -(-f.size_bytes // workers)
        units.extend(Unit(i, k * step, min(f.size_bytes, (k + 1) * step)) for k in range(workers))
    return units


def range_records(plan: Plan, unit: Unit, read: list[int]) -> Iterator[Record]:
    """Lines starting in [start, end) of a plain file, numbered as in the whole file."""
    assert unit.end is not None
    name = plan.file.display
    start, line_no = range_start(plan, unit)
    with open(plan.file.path, "rb") as fh:
        fh.seek(start)
        pos = start
        while pos < unit.end:
            raw = fh.readline()
            if not raw:
                break
            pos += len(raw)
            line_no += 1
            read[0] += 1
            raw = raw.rstrip(b"\n")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            yield Record(
                raw.decode("utf-8", "surrogateescape"),
                SourceRef(name, line_no),
                plan.log_type,
                plan.host,
                plan.access_format,
            )


def range_start(plan: Plan, unit: Unit) -> tuple[int, int]:
    """(byte position, number of lines before it) of the first line starting in the unit's range."""
    with open(plan.file.path, "rb") as fh:
        start = unit.start
        if start > 0:
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                start += len(fh.readline())  # that line belongs to the previous range
    return start, _count_newlines(plan.file.path, start)


def range_lines(plan: Plan, unit: Unit, start: int, line_no: int) -> Iterator[tuple[int, bytes]]:
    """``range_records``' lines as ``open_lines`` gives them, ``(line number, bytes)``, read in big chunks."""
    assert unit.end is not None
    with open(plan.file.path, "rb") as fh:
        fh.seek(start)
        pos = start  # file position of buf[0]
        buf = b""
        while pos < unit.end:
            data = fh.read(CHUNK_BYTES)
            buf += data
            pieces = buf.split(b"\n")
            if data:
                rest = pieces.pop()  # its line goes on in the next chunk
            else:
                rest = b""
                if not pieces[-1]:
                    pieces.pop()  # the file ends with a newline
            limit = unit.end - pos
            # lines start at 0 and after each newline: those starting before the range's end
            starts = 1 + buf.count(b"\n", 0, max(0, limit - 1))
            stop = starts < len(pieces) or not data
            del pieces[starts:]
            if b"\r" in buf:
                pieces = [ln[:-1] if ln.endswith(b"\r") else ln for ln in pieces]
            yield from enumerate(pieces, line_no + 1)
            if stop:
                return
            line_no += len(pieces)
            pos += len(buf) - len(rest)
            buf = rest


def _count_newlines(path: str, end: int) -> int:
    count = 0
    with open(path, "rb") as fh:
        while end > 0:
            chunk = fh.read(min(end, 1 << 22))
            if not chunk:
                break
            count += chunk.count(b"\n")
            end -= len(chunk)
    return count
