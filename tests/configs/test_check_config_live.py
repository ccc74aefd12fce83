"""check-config --live against a real php-fpm master: the socket it creates is stat'ed for real."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from grammars.fpm_conf import load_fpm_conf
from grammars.nginx_conf import load_nginx_conf
from processor.configs.check import check
from processor.configs.live_host import SystemHost

pytestmark = pytest.mark.lab

PHP_FPM = next((p for p in (shutil.which(f"php-fpm{v}") for v in ("", "8.2", "8.3", "8.1")) if p), None)
needs_fpm = pytest.mark.skipif(
    PHP_FPM is None or os.geteuid() != 0, reason="needs php-fpm and root (the master chowns the socket)"
)


def _start_fpm(tmp: Path, pool_lines: str) -> subprocess.Popen[bytes]:
    assert PHP_FPM is not None
    conf = tmp / "php-fpm.conf"
    conf.write_text(
        f"[global]\nerror_log = {tmp}/fpm.log\npid = {tmp}/fpm.pid\n"
        f"[app]\nuser = www-data\ngroup = www-data\nlisten = {tmp}/app.sock\n{pool_lines}"
        "pm = static\npm.max_children = 1\n"
    )
    proc = subprocess.Popen([PHP_FPM, "-F", "-y", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (tmp / "app.sock").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"php-fpm did not start: {(tmp / 'fpm.log').read_text() if (tmp / 'fpm.log').exists() else ''}")
        time.sleep(0.05)
    return proc


def _check(tmp: Path) -> list[tuple[str, str]]:
    (tmp / "nginx.conf").write_text(
        f"user www-data;\nhttp {{ server {{ location / {{ fastcgi_buffer_size 16k;\n"
        f"fastcgi_pass unix:{tmp}/app.sock; }} }} }}\n"
    )
    nginx, fpm = load_nginx_conf(str(tmp / "nginx.conf")), load_fpm_conf(str(tmp / "php-fpm.conf"))
    findings = check(nginx, [fpm], live=SystemHost())
    return [(f.code, f.severity) for f in findings if f.code.startswith("socket")]


@needs_fpm
@pytest.mark.parametrize(
    ("pool_lines", "expected"),
    [
        # what Debian's www.conf does: the socket belongs to www-data
        ("listen.owner = www-data\nlisten.group = www-data\n", []),
        # nothing set: root:root 0660, nginx's www-data is locked out — by the config and by the real file
        ("", [("socket_permission", "error"), ("socket_permission_live", "error")]),
    ],
    ids=["www-data socket", "root socket"],
)
def test_live_socket_of_a_running_master(tmp_path: Path, pool_lines: str, expected: list[tuple[str, str]]) -> None:
    os.chmod(tmp_path, 0o755)  # so the pool user could reach the socket's directory
    proc = _start_fpm(tmp_path, pool_lines)
    try:
        assert sorted(_check(tmp_path)) == expected
    finally:
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)
    # the master removes its socket on exit: now the live check sees no socket at all
    assert ("socket_absent", "warning") in _check(tmp_path)
