"""The file edge of `badgateway replay`: stream the lines of input files (``discovery`` finds and orders them).

Compression is recognised by magic bytes (a `.gz` suffix is only a hint: logrotate's `delaycompress`
and hand-renamed archives both lie). Lines come out as raw bytes; decoding is the parser's business.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import resource
import zlib
from collections.abc import Callable, Generator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import zstandard

from processor.core.errors import InputError

Compression = Literal["none", "gzip", "bz2", "xz", "zstd"]

# Large reads keep the per-line cost at one bytes.split share; 1 MiB measured ~6M lines/s plain.
CHUNK_BYTES = 1 << 20
# A line is held whole in memory; past this it is a binary file or a runaway writer, not a log line.
MAX_LINE_BYTES = 64 << 20
# Compressed input per zstd step (see _ZstdReader.read1 for why the step shrinks on huge ratios).
_ZSTD_INPUT_BYTES = 1 << 16
_ZSTD_MIN_STEP = 256

_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class _Reader(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input file, as discovered.

    `display` is the name used in `file:line` coordinates (the path as the user wrote it, or joined
    under the directory they named). `rotation_index` is 0 for the newest file of its rotated set,
    1 for the one rotated before it, and so on; `rotation_set` is the live file's path shared by the set.
    """

    path: str
    display: str
    size_bytes: int
    rotation_index: int = 0
    compression: Compression = "none"
    rotation_set: str = ""
    # a FIFO or `<(…)` can be read only once: its head is kept for every reader before the full read
    pipe: PipeHead | None = field(default=None, compare=False, repr=False)


class PipeHead:
    """A non-seekable input read once: the bytes the head readers (type detection, time-zone learning) took
    are kept and handed again, first, to the next reader; the full read then drops them as it passes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._saved = bytearray()
        self._done = False  # the full read began: nothing more is kept

    def reader(self, *, head: bool) -> _PipeReader:
        if self._fd is None and not self._done:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        if not head:
            self._done = True
        return _PipeReader(self, head)

    def read(self, view: memoryview, pos: int, head: bool) -> int:
        if pos < len(self._saved):
            n = min(len(view), len(self._saved) - pos)
            view[:n] = self._saved[pos : pos + n]
            if not head and pos + n == len(self._saved):
                self._saved = bytearray()  # handed over once to the full read: not kept
            return n
        if self._fd is None:
            return 0
        n = os.readv(self._fd, [view])
        if head:
            self._saved += view[:n]
        return n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _PipeReader(io.RawIOBase):
    def __init__(self, pipe: PipeHead, head: bool) -> None:
        self._pipe, self._head, self._pos = pipe, head, 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        n = self._pipe.read(memoryview(b).cast("B"), self._pos, self._head)
        self._pos += n
        return n

    def close(self) -> None:
        if not self._head and not self.closed:
            self._pipe.close()
        super().close()


# Descriptors a replay may hold open at once; past them a file is opened for each read (thousands of files
# merged at once must not run into `ulimit -n`).
_held_fds = [0]


def _fd_budget() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 256 if soft == resource.RLIM_INFINITY else max(8, min(256, soft // 4))


class _FileReader(io.RawIOBase):
    """A regular file that keeps its descriptor while the budget allows, else opens it for each read."""

    def __init__(self, f: InputFile) -> None:
        self._path = f.path
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._pos = 0
        if _held_fds[0] < _fd_budget():
            self._fd = self._open()
            _held_fds[0] += 1

    def _open(self) -> int:
        fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)
        if self._ident is None:
            self._ident = (st.st_dev, st.st_ino)
        elif self._ident != (st.st_dev, st.st_ino):
            os.close(fd)
            raise OSError(errno.ESTALE, "the file was replaced while it was being read")
        return fd

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._fd is not None:
            n = os.preadv(self._fd, [b], self._pos)
        else:
            fd = self._open()
            try:
                n = os.preadv(fd, [b], self._pos)
            finally:
                os.close(fd)
        self._pos += n
        return n

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            _held_fds[0] -= 1
        super().close()


def sniff_compression(head: bytes) -> Compression:
    """The compression of a stream starting with `head` (at least 6 bytes when the file has them)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def open_lines(f: InputFile, on_bytes: Callable[[int], None] | None = None) -> Generator[tuple[int, bytes], None, None]:
    """Yield `(line_number, line)` from 1, each line without its `\\n` or `\\r\\n`.

    Compression is sniffed from the file's magic bytes. A last line without a newline is still
    yielded. `on_bytes(n)` is told how many bytes of the file itself (compressed bytes for an
    archive) were consumed since its last call, for progress against `size_bytes`.
    A truncated or corrupt archive raises `InputError` at the line being read when the data ended.
    """
    return _lines(f, on_bytes, head=False)


def _lines(
    f: InputFile, on_bytes: Callable[[int], None] | None, *, head: bool
) -> Generator[tuple[int, bytes], None, None]:
    with ExitStack() as stack:
        try:
            source: io.RawIOBase = f.pipe.reader(head=head) if f.pipe is not None else _FileReader(f)
            stack.callback(source.close)
            # a small buffer: a plain file's 1 MiB reads go straight to the caller's chunk
            raw = io.BufferedReader(source, 1 << 16)
            stream = _decompressing(raw, sniff_compression(raw.peek(8)[:8]))
            stack.callback(stream.close)
        except OSError as err:
            raise InputError(f.display, err.strerror or str(err)) from err
        yield from _split_lines(stream, raw, f, on_bytes)


def _decompressing(raw: io.BufferedReader[Any], compression: Compression) -> _Reader:
    # The stdlib readers handle multi-member gzip and concatenated bz2/xz streams (what `cat a.gz b.gz`
    # and pigz produce); _ZstdReader does the same for zstd frames.
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(raw, "rb")
    if compression == "xz":
        return lzma.LZMAFile(raw, "rb")
    if compression == "zstd":
        return _ZstdReader(raw)
    return raw


class _ZstdReader:
    """`read1` over concatenated zstd frames that, unlike `stream_reader`, notices a cut-off frame
    (`stream_reader` reports a clean EOF there, and `read_to_iter` stops after the first frame)."""

    def __init__(self, raw: io.BufferedReader[Any]) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._pending = b""  # compressed input not yet fed to a frame
        self._step = _ZSTD_MIN_STEP  # start small, grow while the output stays modest
        self._cut = False  # the data ended inside a frame

    def read1(self, size: int = -1) -> bytes:
        """About CHUNK_BYTES of output (`size` is ignored); b"" only at the end of the file."""
        if self._cut:
            raise EOFError("zstd frame ended before its end mark")
        out: list[bytes] = []
        produced = 0
        while produced < CHUNK_BYTES:
            if not self._pending:
                self._pending = self._raw.read(_ZSTD_INPUT_BYTES)
                if not self._pending:
                    if self._frame is not None and not self._frame.eof:
                        # what this call decoded is handed over first; the next call reports the cut
                        self._cut = True
                        if not out:
                            raise EOFError("zstd frame ended before its end mark")
                    break
            if self._frame is None or self._frame.eof:
                self._frame = self._dctx.decompressobj()
            feed, rest = self._pending[: self._step], self._pending[self._step :]
            piece = self._frame.decompress(feed)
            self._pending = (self._frame.unused_data if self._frame.eof else b"") + rest
            out.append(piece)
            produced += len(piece)
            # decompressobj can't cap its output, so cap its input: a few bytes of RLE blocks can
            # stand for megabytes, and one step's output must stay near CHUNK_BYTES, not the file.
            if len(piece) > 4 * CHUNK_BYTES:
                self._step = max(_ZSTD_MIN_STEP, self._step // 16)
            elif len(piece) < CHUNK_BYTES // 4 and self._step < _ZSTD_INPUT_BYTES:
                self._step *= 4
        return b"".join(out)

    def close(self) -> None:
        self._frame = None


def _split_lines(
    stream: _Reader, raw: io.BufferedReader[Any], f: InputFile, on_bytes: Callable[[int], None] | None
) -> Generator[tuple[int, bytes], None, None]:
    lineno = 0
    pending: list[bytes] = []  # pieces of a line longer than one chunk
    consumed = 0
    while True:
        try:
            # read1, not read: a decoder error then surfaces after every decoded byte was handed
            # over, so the line reported for a truncated archive is the line really reached.
            chunk = stream.read1(CHUNK_BYTES)
        except (EOFError, OSError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as err:
            hint = "" if stream is raw else " (compressed data ends early or is corrupt)"
            raise InputError(f.display, _describe(err) + hint, lineno + 1) from err
        if on_bytes is not None:
            position = raw.tell() if stream is not raw else consumed + len(chunk)
            on_bytes(position - consumed)
            consumed = position
        if not chunk:
            break
        if b"\n" not in chunk:
            pending.append(chunk)
            if sum(map(len, pending)) > MAX_LINE_BYTES:  # only on chunks without a newline: rare
                raise InputError(f.display, f"line longer than {MAX_LINE_BYTES >> 20} MiB: not a text log?", lineno + 1)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending.clear()
        lines = chunk.split(b"\n")
        pending.append(lines.pop())
        if b"\r" in chunk:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        yield from enumerate(lines, lineno + 1)
        lineno += len(lines)
    last = b"".join(pending)
    if last:
        yield lineno + 1, last


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text[0].lower() + text[1:]


def head_lines(f: InputFile, n: int = 50) -> list[bytes]:
    """The first `n` lines of `f` (fewer if it is shorter), for log type detection."""
    lines: list[bytes] = []
    if n <= 0:
        return lines
    gen = _lines(f, None, head=True)
    try:
        for _, line in gen:
            lines.append(line)
            if len(lines) >= n:
                break
    finally:
        gen.close()  # closes the file now rather than at garbage collection
    return lines
