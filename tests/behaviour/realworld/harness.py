"""Run ``badgateway replay`` on log files and configs written from a test: incidents and dead letters out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from processor.cli import main


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replay(
    tmp_path: Path,
    logs: dict[str, str],
    *,
    nginx_conf: str | None = None,
    fpm_confs: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``logs``: file name → its text (a name under ``logs/``); the configs' texts, written beside them.
    Returns (incidents, dead letters)."""
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir(exist_ok=True)
    for name, text in logs.items():
        (logs_dir / name).write_text(text, encoding="utf-8", errors="surrogateescape")
    args = [
        "replay",
        "-q",
        "--no-progress",
        "-o",
        str(tmp_path / "incidents.jsonl"),
        "--dead-letter",
        str(tmp_path / "dead.jsonl"),
        "--allowed-lateness",
        "60",
    ]
    if nginx_conf is not None:
        conf = tmp_path / "nginx.conf"
        conf.write_text(nginx_conf)
        args += ["--nginx-conf", str(conf)]
    for i, text in enumerate(fpm_confs):
        conf = tmp_path / f"php-fpm-{i}.conf"
        conf.write_text(text)
        args += ["--fpm-conf", str(conf)]
    code = main([*args, *extra, *[str(logs_dir / name) for name in logs]])
    assert code == 0, code
    return _jsonl(tmp_path / "incidents.jsonl"), _jsonl(tmp_path / "dead.jsonl")
