"""Differential: our config grammars and the real ``nginx -t`` / ``php-fpm -t`` agree on file:line.

Each broken config is given to the installed server's own config test; the ``file:line`` it names
must be the one our ConfigError names (and a config it accepts we must accept). Skipped where the
servers are not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from grammars.config_errors import ConfigError
from grammars.fpm_conf import load_fpm_conf
from grammars.nginx_conf import load_nginx_conf

pytestmark = pytest.mark.lab

NGINX = shutil.which("nginx")
PHP_FPM = next((p for p in (shutil.which(f"php-fpm{v}") for v in ("", "8.2", "8.3", "8.1")) if p), None)

NGINX_CASES = [
    # (description, {file: text}) — the first file is the main one
    ("missing ; before }", {"nginx.conf": "events {}\nhttp {\n server {\n  location / {\n   return 200\n  }\n }\n}\n"}),
    ("missing } at end of file", {"nginx.conf": "events {}\nhttp {\n server {\n"}),
    ("extra }", {"nginx.conf": "events {}\n}\n"}),
    ("lone ;", {"nginx.conf": "events {}\n;\n"}),
    (
        "error in an included file",
        {
            "nginx.conf": "events {}\nhttp {\n include sites/*.conf;\n}\n",
            "sites/a.conf": "server {\n listen 8080;\n location / {\n  return 204\n }\n}\n",
        },
    ),
    (
        "valid: regex location, quotes, comments",
        {
            "nginx.conf": (
                'events {}\nhttp {\n log_format m \'$remote_addr "$request"\' # c\n   "$status";\n'
                " server {\n  listen 8080;\n  location ~ \\.php$ { fastcgi_pass unix:/run/php/a.sock; }\n }\n}\n"
            )
        },
    ),
]


def _write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp / next(iter(files))


def _where(text: str) -> str | None:
    m = re.search(r" in (/\S+:\d+)$", text, re.MULTILINE) or re.search(r"\[(/\S+:\d+)\]", text)
    return m.group(1) if m else None


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
@pytest.mark.parametrize(("description", "files"), NGINX_CASES, ids=[c[0] for c in NGINX_CASES])
def test_nginx_agrees(tmp_path: Path, description: str, files: dict[str, str]) -> None:
    main = _write(tmp_path, files)
    assert NGINX is not None
    real = subprocess.run(
        [NGINX, "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    try:
        load_nginx_conf(str(main))
        ours = None
    except ConfigError as exc:
        ours = str(exc.origin)
    assert ours == (_where(real.stderr) if real.returncode else None), real.stderr


FPM_HEAD = "[global]\nerror_log = {tmp}/fpm.log\n[www]\nuser = www-data\nlisten = {tmp}/www.sock\npm = static\n"
FPM_CASES = [
    ("missing =", "listen.owner www-data\npm.max_children = 2\n"),
    ("bad integer", "pm.max_children = many\n"),
    ("bad boolean", "pm.max_children = 2\ncatch_workers_output = maybe\n"),
    ("unknown time suffix", "pm.max_children = 2\nrequest_terminate_timeout = 30x\n"),
    ("valid: compound time FPM misreads", "pm.max_children = 2\nrequest_terminate_timeout = 1m30s\n"),
    (
        "valid: $pool, quotes, comments",
        'pm.max_children = 2 ; two\nslowlog = {tmp}/$pool.slow\naccess.format = "%R \\"%m %r\\" %s"\n',
    ),
]


@pytest.mark.skipif(PHP_FPM is None, reason="php-fpm is not installed")
@pytest.mark.parametrize(("description", "tail"), FPM_CASES, ids=[c[0] for c in FPM_CASES])
def test_php_fpm_agrees(tmp_path: Path, description: str, tail: str) -> None:
    main = _write(tmp_path, {"php-fpm.conf": (FPM_HEAD + tail).replace("{tmp}", str(tmp_path))})
    assert PHP_FPM is not None
    real = subprocess.run([PHP_FPM, "-t", "-y", str(main)], capture_output=True, text=True, timeout=30)
    try:
        load_fpm_conf(str(main))
        ours = None
    except ConfigError as exc:
        ours = str(exc.origin)
    assert ours == (_where(real.stderr) if real.returncode else None), real.stderr
