"""One exception root for badgateway, one subclass per layer, and the one way their text reaches a terminal.

The CLI catches `BadgatewayError` and prints `str(exc)` as one line (no traceback); everything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class BadgatewayError(Exception):
    """Root of every error badgateway raises on purpose."""


class InputError(BadgatewayError):
    """An input file that cannot be found, read or decompressed.

    `line` is the last line reached when the failure happened mid-file (e.g. a truncated .gz),
    so the message names `file:line` like every other coordinate badgateway prints.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {reason}")


class UserConfigError(BadgatewayError, ValueError):
    """Bad options or configuration given by the user (also a `ValueError`, as config errors are)."""


class KafkaError(BadgatewayError):
    """A Kafka client failure, wrapped with the client's native error code kept for the operator."""

    def __init__(self, message: str, code: int | str | None = None) -> None:
        self.code = code
        super().__init__(message if code is None else f"{message} (code {code})")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def escape_controls(text: str) -> str:
    """Control characters (ESC, CR, newlines …) as `\\xNN`: a file or pool name cannot repaint a terminal or
    split an error into several lines."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
