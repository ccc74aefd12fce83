"""``badgateway filter`` reads a long line in linear time and caps it as replay does (issue #23).

No clock: the filter runs in-process on chunks that count the bytes each ``bytes`` operation scans or
copies (``split``, ``+``, slices, ``rstrip``, …). Splitting a line that spans many chunks must look at each
byte a bounded number of times; appending every chunk to one growing buffer and splitting it again looked
at the whole line once per chunk, quadratic in its length.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, SupportsIndex

import pytest

from processor.cli.main import build_parser
from processor.io.files import MAX_LINE_BYTES
from processor.runners import stdin_filter as filter_mode

CHUNK = 1 << 16  # what one os.read of stdin gives
ACCESS = b'127.0.0.1 - - [24/Nov/2026:05:42:00 +0000] "GET /a.php HTTP/1.1" 200 5 "-" "curl/8.5.0"'


class Counted(bytes):
    """bytes that add the length of what each operation scans or copies to ``Counted.touched``."""

    touched = 0

    @classmethod
    def _add(cls, n: int) -> None:
        cls.touched += n

    def __add__(self, other: bytes) -> Counted:  # type: ignore[override]
        self._add(len(self) + len(other))
        return Counted(bytes(self) + other)

    def __radd__(self, other: bytes) -> Counted:
        self._add(len(self) + len(other))
        return Counted(other + bytes(self))

    def split(self, sep: Any = None, maxsplit: SupportsIndex = -1) -> list[bytes]:
        self._add(len(self))
        return [Counted(part) for part in bytes(self).split(sep, maxsplit)]

    def __getitem__(self, key: Any) -> Any:
        part = bytes(self)[key]
        if isinstance(part, bytes):
            self._add(len(part))
            return Counted(part)
        return part

    def rstrip(self, chars: Any = None) -> Counted:
        self._add(len(self))
        return Counted(bytes(self).rstrip(chars))

    def find(self, *args: Any) -> int:
        self._add(len(self))
        return bytes(self).find(*args)

    def __contains__(self, item: Any) -> bool:
        self._add(len(self))
        return bytes(self).__contains__(item)

    def decode(self, *args: Any) -> str:
        self._add(len(self))
        return bytes(self).decode(*args)


def run_filter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, chunks: list[bytes]
) -> tuple[list[dict[str, Any]], str]:
    """Run ``badgateway filter --type nginx_access`` on ``chunks``: its dead letters and its summary."""
    feed: Iterator[bytes] = iter(chunks)

    def lines(stream: object) -> tuple[list[bytes], bool]:
        chunk = next(feed, None)
        return ([], True) if chunk is None else ([chunk], False)

    monkeypatch.setattr(filter_mode, "_lines", lines)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO()))
    dead = tmp_path / "dead.jsonl"
    args = build_parser().parse_args(["filter", "--type", "nginx_access", "--dead-letter", str(dead)])
    assert filter_mode.filter_command(args) == 0
    return [json.loads(line) for line in dead.read_text().splitlines()], capsys.readouterr().err


def one_long_line(size: int) -> list[bytes]:
    """A ``size``-byte line in stdin-sized chunks (the same chunk object: cheap), then an access line."""
    piece = Counted(b"x" * CHUNK)
    end: bytes = Counted(b"\n" + ACCESS + b"\n")
    return [piece] * (size // CHUNK) + [end]


@pytest.mark.parametrize("size", [4 << 20, 8 << 20])
def test_a_long_line_is_read_in_one_pass(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, size: int
) -> None:
    # each byte of the line is scanned or copied a few times, not once per chunk that came after it
    Counted.touched = 0
    dead, summary = run_filter(monkeypatch, capsys, tmp_path, one_long_line(size))
    assert Counted.touched <= 3 * size, f"{Counted.touched / size:.0f} passes over a {size >> 20} MiB line"
    assert [d["source"] for d in dead] == ["stdin:1"]  # the envelope's 1 MiB record cap: unchanged
    assert "lines in 2 = parsed 1 + dead-lettered 1" in summary


def test_a_line_past_replays_cap_is_a_dead_letter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # replay stops at a line over MAX_LINE_BYTES; filter, a long-running pipe, dead-letters it and goes on
    dead, summary = run_filter(monkeypatch, capsys, tmp_path, one_long_line(MAX_LINE_BYTES + CHUNK))
    [letter] = dead
    assert letter["source"] == "stdin:1"
    assert letter["reason"] == (
        f"line is {MAX_LINE_BYTES + CHUNK} bytes, longer than {MAX_LINE_BYTES >> 20} MiB: not a text log?"
    )
    assert letter["raw"] == "x" * 2048 + "…"
    assert "lines in 2 = parsed 1 + dead-lettered 1" in summary


# (why it matters, max_line_bytes, chunks, what comes out: a line's bytes or ("over", length, head))
SPLITS: list[tuple[str, int, list[bytes], list[Any]]] = [
    ("lines inside one chunk", 100, [b"a\nbb\n"], [b"a", b"bb"]),
    ("a line across three chunks", 100, [b"a", b"b", b"c\nd"], [b"abc", b"d"]),
    ("an empty line between two", 100, [b"a\n\nb\n"], [b"a", b"", b"b"]),
    ("no newline at the end", 100, [b"a\nb"], [b"a", b"b"]),
    ("exactly at the cap", 4, [b"ab", b"cd\n"], [b"abcd"]),
    # past the cap the pieces are dropped: the head (what was held, at most 2048 bytes) and the length stay
    ("one byte past the cap, across chunks", 4, [b"ab", b"cde\nf\n"], [("over", 5, b"abcde"), b"f"]),
    ("past the cap inside one chunk", 4, [b"a\nbcdefg\nh\n"], [b"a", ("over", 6, b"bcdefg"), b"h"]),
    ("past the cap, then many chunks", 4, [b"abcde", b"f", b"g", b"\nh"], [("over", 7, b"abcde"), b"h"]),
    ("past the cap at the end of input", 4, [b"abcde", b"f"], [("over", 6, b"abcde")]),
]


@pytest.mark.parametrize(("why", "cap", "chunks", "expected"), SPLITS, ids=[s[0] for s in SPLITS])
def test_line_buffer_splits(why: str, cap: int, chunks: list[bytes], expected: list[Any]) -> None:
    buffer = filter_mode.LineBuffer(cap)
    out = [line for chunk in chunks for line in buffer.feed(chunk)]
    if (last := buffer.flush()) is not None:
        out.append(last)
    assert [("over", o.length, o.head) if isinstance(o, filter_mode.OverLong) else o for o in out] == expected, why
