"""``include`` for nginx.conf: read a file, replace each ``include`` with the directives it names.

nginx resolves a relative include against its *conf prefix* (the main file's directory unless
``-p``/``--conf-path`` say otherwise), not against the including file: ``snippets/fastcgi-php.conf``
in ``sites-enabled/default`` is ``/etc/nginx/snippets/fastcgi-php.conf``. A pattern (``*?[``) that
matches nothing is fine, as in nginx; a plain path that does not exist is an error at the include.
"""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from typing import Final, TextIO

from grammars.config_errors import ConfigError
from grammars.nginx_syntax import Directive, parse_nginx_text

# nginx has no limit, but a config tree deeper than this is a cycle through symlinks or a mistake.
MAX_INCLUDE_DEPTH: Final = 32
# One config tree (a main file and what it includes), at most: `--nginx-conf /dev/zero` read until MemoryError,
# and parsing costs ~0.1 ms a line (100k lines took over a minute). Real trees are far below both.
MAX_CONFIG_BYTES: Final = 16 << 20
MAX_CONFIG_LINES: Final = 50_000


class ConfigBudget:
    """What is left to read of one config tree, in bytes (characters) and lines."""

    def __init__(self, max_bytes: int = MAX_CONFIG_BYTES, max_lines: int = MAX_CONFIG_LINES) -> None:
        self.max_bytes, self.max_lines = max_bytes, max_lines
        self.bytes, self.lines = max_bytes, max_lines

    def read(self, fh: TextIO, path: str) -> str:
        text = fh.read(self.bytes + 1)
        if len(text) > self.bytes:
            raise ConfigError(
                path,
                0,
                f"config larger than {self.max_bytes >> 20} MiB with its includes:"
                " not a config file? (badgateway reads no more)",
            )
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if lines > self.lines:
            raise ConfigError(
                path,
                self.lines + 1,
                f"config longer than {self.max_lines:,} lines with its includes (badgateway reads no more)",
            )
        self.bytes -= len(text)
        self.lines -= lines
        return text


def rebase(path: str, root: str | None) -> str:
    """An absolute config path as seen from ``root`` (a copied tree), or unchanged without one."""
    if root is None or not os.path.isabs(path):
        return path
    return os.path.join(root, path.lstrip("/"))


def read_config_text(path: str, origin_file: str = "", origin_line: int = 0, budget: ConfigBudget | None = None) -> str:
    """A config file's text; unreadable files become a ConfigError at the line that named them. ``budget`` is
    the tree's (the caps hold for the main file and its includes together); without one, the file's own."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return (budget or ConfigBudget()).read(fh, path)
    except OSError as exc:
        where = (origin_file, origin_line) if origin_file else (path, 0)
        raise ConfigError(where[0], where[1], f'open() "{path}" failed ({exc.strerror or exc})') from None


def resolve_pattern(pattern: str, base_dirs: tuple[str, ...], root: str | None) -> list[str]:
    """Files an include pattern names, sorted as glob(3) returns them.

    A relative pattern is tried against each base directory in turn; the first that matches wins.
    """
    if os.path.isabs(pattern):
        candidates = [rebase(pattern, root)]
    else:
        candidates = [os.path.join(base, pattern) for base in base_dirs]
    has_magic = glob.has_magic(pattern)
    for candidate in candidates:
        if has_magic:
            found = sorted(glob.glob(candidate))
            if found:
                return found
        elif os.path.exists(candidate):
            return [candidate]
    if has_magic:
        return []
    return [candidates[0]]  # let the read fail with nginx's "open() failed" message


class _Expander:
    def __init__(self, conf_prefix: str, root: str | None) -> None:
        self.conf_prefix = conf_prefix
        self.root = root
        self.files: list[str] = []
        self.budget = ConfigBudget()

    def load(self, path: str, stack: tuple[str, ...], at: Directive | None) -> tuple[Directive, ...]:
        real = os.path.realpath(path)
        if real in stack or len(stack) >= MAX_INCLUDE_DEPTH:
            assert at is not None  # the main file cannot be on the stack yet
            chain = " -> ".join([*stack[stack.index(real) :], real] if real in stack else [real])
            raise ConfigError(at.origin.file, at.origin.line, f"include cycle: {chain}")
        text = read_config_text(path, *((at.origin.file, at.origin.line) if at else ("", 0)), self.budget)
        self.files.append(path)
        return self.expand(parse_nginx_text(text, path), (*stack, real))

    def expand(self, block: tuple[Directive, ...], stack: tuple[str, ...]) -> tuple[Directive, ...]:
        out: list[Directive] = []
        for d in block:
            if d.name == "include" and d.block is None:
                if len(d.args) != 1:
                    raise ConfigError(
                        d.origin.file, d.origin.line, 'invalid number of arguments in "include" directive'
                    )
                # nginx's rule first; the including file's directory helps with trees copied
                # out of place (a snippet checked on its own).
                bases = (self.conf_prefix, os.path.dirname(d.origin.file))
                for path in resolve_pattern(d.args[0], bases, self.root):
                    out.extend(self.load(path, stack, d))
            elif d.block is not None:
                out.append(replace(d, block=self.expand(d.block, stack)))
            else:
                out.append(d)
        return tuple(out)


def expand_includes(
    path: str, *, prefix: str | None = None, root: str | None = None
) -> tuple[tuple[Directive, ...], tuple[str, ...]]:
    """The directive tree of ``path`` with every include expanded, and the files read in order."""
    expander = _Expander(prefix if prefix is not None else os.path.dirname(path), root)
    tree = expander.load(path, (), None)
    return tree, tuple(expander.files)
