"""The `badgateway` command line: entry point, command bodies, progress, summary and the HTML report."""

from processor.cli.main import main

__all__ = ["main"]
