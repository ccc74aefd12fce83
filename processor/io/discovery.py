"""Find the input files of a replay: files, directories (recursively) and globs; rotated sets in age order.

``discover`` turns what the user typed into ``InputFile``s that ``processor.io.files`` reads: a rotated set
(``x.log.2.gz``, ``x.log.1``, ``x.log``; dateext names by date) is ordered oldest first, so it reads as one
time-ordered stream, and what cannot be opened fails here, before any line is read.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import re
import stat
from collections.abc import Sequence

from processor.core.errors import InputError
from processor.io.files import Compression, InputFile, PipeHead, sniff_compression

_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zstd")
# logrotate: `name.N` (default) or `name-YYYYMMDD[HH]` / `name-YYYY-MM-DD` (dateext, `dateformat`).
_NUMBERED = re.compile(r"^(?P<base>.+)\.(?P<n>\d{1,6})$")
_DATED = re.compile(r"^(?P<base>.+)[-.](?P<date>(?:19|20)\d{6}(?:\d{2,6})?|\d{4}-\d{2}-\d{2})$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def discover(paths: Sequence[str]) -> list[InputFile]:
    """Expand files, directories (recursively, hidden entries skipped) and globs into input files.

    Rotated sets are grouped and ordered oldest first (`x.log.3.gz`, `x.log.2.gz`, `x.log.1`, `x.log`;
    dateext names by date), so each set reads as one time-ordered stream. A file reached twice is
    listed once. Raises `InputError` for a path that doesn't exist, matches nothing or can't be read.
    """
    found: dict[str, str] = {}  # real path -> display; dict keeps discovery order
    for arg in paths:
        for display in _expand(arg):
            found.setdefault(os.path.realpath(display), display)
    # Group by the name as written, not the symlink target: the rotation lives in the names.
    sets: dict[str, list[tuple[tuple[int, str], str, str]]] = {}
    for display in found.values():
        path = os.path.abspath(display)
        live, age_key = _rotation_key(path)
        sets.setdefault(live, []).append((age_key, path, display))
    files: list[InputFile] = []
    for live, members in sets.items():
        members.sort(reverse=True)  # largest age key = oldest
        for position, (_, path, display) in enumerate(members):
            size, compression, regular = _probe(path, display)
            files.append(
                InputFile(
                    path,
                    display,
                    size,
                    len(members) - 1 - position,
                    compression,
                    live,
                    None if regular else PipeHead(path),
                )
            )
    return files


def _expand(arg: str) -> list[str]:
    if os.path.isdir(arg):
        out: list[str] = []
        for root, dirs, names in os.walk(arg, onerror=_raise_walk_error):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                full = os.path.join(root, name)
                # Sockets and FIFOs in a log directory are not archives; broken links are reported.
                if not name.startswith(".") and (os.path.isfile(full) or os.path.islink(full)):
                    out.append(full)
        if not out:
            raise InputError(arg, "directory holds no files")
        return out
    if os.path.lexists(arg) or not _GLOB_CHARS.search(arg):
        return [arg]  # _probe reports missing or broken paths with the name the user wrote
    matches = sorted(m for m in (_recursive_glob(arg) if "**" in arg else glob.glob(arg)) if not os.path.isdir(m))
    if not matches:
        raise InputError(arg, "no files match this pattern")
    return matches


def _recursive_glob(pattern: str) -> list[str]:
    """``glob(pattern, recursive=True)`` that enters each directory once: glob's ``**`` follows a symlink loop
    until the path is too long (a loop of two links ran past 120 s and 495 MB)."""
    parts = pattern.split(os.sep)
    fixed = next(i for i, part in enumerate(parts) if _GLOB_CHARS.search(part))
    top = os.sep.join(parts[:fixed]) or ("/" if pattern.startswith(os.sep) else ".")
    wanted = tuple(parts[fixed:])
    dot_dirs = any(part.startswith(".") for part in wanted)
    seen: set[tuple[int, int]] = set()
    found: list[str] = []
    for root, dirs, names in os.walk(top, followlinks=True):
        try:
            st = os.stat(root)
        except OSError:
            dirs.clear()
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs.clear()  # reached again (a symlink loop or a second link): walked once already
            continue
        seen.add((st.st_dev, st.st_ino))
        if not dot_dirs:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, top)
        here = () if rel == "." else tuple(rel.split(os.sep))
        for name in names:
            if _glob_match(wanted, (*here, name)):
                found.append(os.path.join(root, name) if parts[:fixed] else os.path.normpath(os.path.join(root, name)))
    return found


@functools.lru_cache(maxsize=4096)
def _glob_match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Path components against glob components, ``**`` standing for any number of directories (as glob's
    recursive mode: wildcards do not match a leading dot)."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(
            _glob_match(rest, parts[k:]) for k in range(len(parts) + 1) if not any(p.startswith(".") for p in parts[:k])
        )
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _glob_match(rest, parts[1:])


def _raise_walk_error(err: OSError) -> None:
    raise InputError(str(err.filename), err.strerror or str(err))


def _rotation_key(path: str) -> tuple[str, tuple[int, str]]:
    """(live path of the set, age key: larger is older). The live file has the smallest key."""
    name = path
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if m := _NUMBERED.match(name):
        return m["base"], (2, f"{int(m['n']):09d}")
    if m := _DATED.match(name):
        # Negate the date digits so that an earlier date sorts as older; dateext and numbered
        # names don't mix in one logrotate set, so the tier order between them is arbitrary.
        digits = m["date"].replace("-", "").ljust(14, "0")
        return m["base"], (1, "".join(str(9 - int(c)) for c in digits))
    return path, (0, "")


def _probe(path: str, display: str) -> tuple[int, Compression, bool]:
    """Size and compression, failing early (before any line is read) on what can't be opened."""
    if not os.path.exists(path):
        reason = "broken symbolic link" if os.path.islink(path) else "no such file or directory"
        raise InputError(display, reason)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(display, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            # A FIFO (`<(zcat …)`) can be read only once: check permission, sniff when reading.
            if not os.access(path, os.R_OK):
                raise InputError(display, "permission denied")
            return 0, "none", False
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise InputError(display, err.strerror or str(err)) from err
    return st.st_size, sniff_compression(head), True
