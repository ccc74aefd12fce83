"""What `badgateway replay` reports at the end of a run: the terminal summary and the HTML page.

Pure functions of the incident records (docs/contracts.md) and the run's `ReplayStats`; the CLI
writes the results wherever the user asked.
"""

from __future__ import annotations

from processor.cli.report_html import render_html
from processor.cli.summary import LineCounts, ReplayStats, summary_text

__all__ = ["LineCounts", "ReplayStats", "render_html", "summary_text"]
