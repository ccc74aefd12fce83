"""Where a configuration value came from, and the error raised when a config cannot be read.

Config loaders raise (unlike the log grammars, which return ``ParseError``): a broken
nginx.conf or php-fpm.conf is a usage error the operator must fix, named by ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Origin:
    """A position in a config file: ``file:line`` (1-based line; 0 when the whole file is meant)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class ConfigError(ValueError):
    """A config file that cannot be read, included or parsed; ``str()`` is ``file:line: message``."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")

    @property
    def origin(self) -> Origin:
        """The position the error names."""
        return Origin(self.file, self.line)
