"""A session fixture that runs the 502 lab (real nginx + php-fpm) once; every lab test reuses its OUTDIR.

    def test_something(lab_outdir: Path) -> None: ...   # OUTDIR with logs/, conf/, ground_truth.jsonl

The lab needs root (nginx workers run as nobody, FPM workers as www-data), /usr/sbin/nginx and
/usr/sbin/php-fpm8.2; without them the lab tests are skipped. The run is kept when it fails
(its path is printed) and removed when it passed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NGINX = os.environ.get("BADGATEWAY_LAB_NGINX", "/usr/sbin/nginx")
PHP_FPM = os.environ.get("BADGATEWAY_LAB_PHP_FPM", "/usr/sbin/php-fpm8.2")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (nginx workers as nobody, FPM workers as www-data)"
    for binary in (NGINX, PHP_FPM):
        if not os.access(binary, os.X_OK):
            return f"{binary} is not installed (apt-get install -y nginx-light php8.2-fpm)"
    return None


def _run_lab(*extra: str) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    why = _why_not()
    if why:
        pytest.skip(why)
    # not pytest's tmp_path: its parents are 0700, and nginx's workers (nobody) must reach the sockets
    out = Path(tempfile.mkdtemp(prefix="badgateway-lab-", dir="/tmp"))
    os.chmod(out, 0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "lab.run", str(out), *extra], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    ok = proc.returncode == 0
    yield out, proc
    if ok and not os.environ.get("BADGATEWAY_LAB_KEEP"):
        shutil.rmtree(out, ignore_errors=True)
    else:
        print(f"\nlab run kept in {out}")


@pytest.fixture(scope="session")
def lab_run() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """(OUTDIR, the finished `python -m lab.run OUTDIR` process)."""
    yield from _run_lab()


@pytest.fixture(scope="session")
def lab_json_run() -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """The same for the json-debug variant: JSON access log for lab.test, PHP-FPM at log_level debug."""
    yield from _run_lab("--variant", "json-debug")


@pytest.fixture(scope="session")
def lab_outdir(lab_run: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    return lab_run[0]
