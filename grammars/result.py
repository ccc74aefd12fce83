"""What every parse function returns: a dict of typed fields, or a located ``ParseError``.

Parsing never raises to its caller. A failure keeps the whole line (``str`` with surrogate
escapes for invalid UTF-8, so the raw bytes can be recovered for the dead-letter output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Fields = dict[str, Any]

_EXCERPT_RADIUS = 40


@dataclass(frozen=True, slots=True)
class ParseError:
    """A line that did not parse: why, and where (1-based column)."""

    reason: str
    column: int
    line: str

    def context(self) -> str:
        """Two-line caret excerpt around the failing column (lark's ``get_context`` habit)."""
        start = max(0, self.column - 1 - _EXCERPT_RADIUS)
        end = self.column - 1 + _EXCERPT_RADIUS
        before = self.line[start : self.column - 1].replace("\t", " ")
        after = self.line[self.column - 1 : end].replace("\t", " ")
        snippet = before + after
        return f"{snippet}\n{' ' * len(before)}^"

    def __str__(self) -> str:
        return f"col {self.column}: {self.reason}"
