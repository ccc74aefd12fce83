"""check-config's advice is checked against the whole config: following a fix (editing the line it names, as
it says) removes the finding and creates no new one — but for the timeout findings of a pool nothing reached
before (they are that pool's own, found once a location reaches it). Tested on the lab's configs and on the fixture trees with
the mistakes DOMAIN.md lists (a socket renamed on one side, a dead upstream server, the php7.4 socket of a
Debian site left after an upgrade)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grammars.fpm_conf import load_fpm_conf
from grammars.nginx_conf import load_nginx_conf
from processor.configs.check import _identity, check
from processor.configs.rules import Edit, Finding

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "configs"


Scenario = tuple[str, list[str], str | None]  # nginx.conf, php-fpm.conf files, the root they are read under


def lab(tmp: Path) -> Scenario:
    shutil.copytree(REPO / "examples" / "lab" / "conf", tmp / "conf")
    return str(tmp / "conf" / "nginx.conf"), [str(p) for p in sorted((tmp / "conf").glob("php-fpm*.conf"))], None


def app_mistakes(tmp: Path) -> Scenario:
    shutil.copytree(FIXTURES / "app", tmp / "app", symlinks=True)
    etc = tmp / "app" / "etc"
    shop = etc / "nginx" / "sites-available" / "shop.conf"
    shop.write_text(
        shop.read_text().replace("fastcgi_pass unix:/run/php/shop.sock;", "fastcgi_pass unix:/run/php/shop8.sock;", 1)
    )
    ups = etc / "nginx" / "conf.d" / "upstreams.conf"
    ups.write_text(ups.read_text().replace("server 127.0.0.1:9001", "server 127.0.0.1:9002"))
    return "/etc/nginx/nginx.conf", ["/etc/php/8.2/fpm/php-fpm.conf"], str(tmp / "app")


def debian_upgrade(tmp: Path) -> Scenario:
    shutil.copytree(FIXTURES / "debian", tmp / "debian", symlinks=True)
    etc = tmp / "debian" / "etc"
    site = etc / "nginx" / "sites-available" / "default"
    text = site.read_text().replace(
        "\t#location ~ \\.php$ {\n\t#\tinclude snippets/fastcgi-php.conf;",
        "\tlocation ~ \\.php$ {\n\t\tinclude snippets/fastcgi-php.conf;",
        1,
    )
    text = text.replace(
        "\t#\tfastcgi_pass unix:/run/php/php7.4-fpm.sock;", "\t\tfastcgi_pass unix:/run/php/php7.4-fpm.sock;"
    )
    text = text.replace("\t#\tfastcgi_pass 127.0.0.1:9000;\n\t#}", "\t}", 1)
    site.write_text(text)
    enabled = etc / "nginx" / "sites-enabled" / "default"
    if not enabled.is_symlink():
        enabled.symlink_to("../sites-available/default")
    return "/etc/nginx/nginx.conf", ["/etc/php/8.2/fpm/php-fpm.conf"], str(tmp / "debian")


def findings(nginx: str, fpms: list[str], root: str | None) -> list[Finding]:
    return check(load_nginx_conf(nginx, root=root), [load_fpm_conf(p, root=root) for p in fpms])


def apply_to_file(edit: Edit) -> None:
    """Make the edit in the file, as an operator following the fix would."""
    path = Path(edit.origin.file)
    lines = path.read_text().split("\n")
    line = lines[edit.origin.line - 1]
    if edit.directive == "listen":
        new = re.sub(r"^(\s*listen\s*=\s*).*$", lambda m: m.group(1) + edit.new, line)
    elif edit.directive == "fastcgi_pass":
        new = re.sub(r"fastcgi_pass\s+[^;]+;", f"fastcgi_pass {edit.new};", line)
    else:
        new = re.sub(r"server\s+[^\s;]+", f"server {edit.new}", line)
    assert new != line, (edit, line)
    lines[edit.origin.line - 1] = new
    path.write_text("\n".join(lines))


TIMEOUTS = {"fpm_timeout_first", "fpm_timeout_unset", "nginx_timeout_first"}
SCENARIOS = {"lab": lab, "app": app_mistakes, "debian": debian_upgrade}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_following_a_fix_creates_no_new_finding(tmp_path: Path, scenario: str) -> None:
    nginx, fpms, root = SCENARIOS[scenario](tmp_path / "before")
    before = findings(nginx, fpms, root)
    with_edits = [f for f in before if f.edits]
    assert with_edits, "the scenario must exercise fixes that edit a line"
    tried = 0
    for finding in with_edits:
        for edit in finding.edits:
            # each edit on a fresh copy, located in it
            copy = tmp_path / f"edit{tried}"
            shutil.copytree(tmp_path / "before", copy, symlinks=True)
            moved = Edit(
                type(edit.origin)(edit.origin.file.replace(str(tmp_path / "before"), str(copy)), edit.origin.line),
                edit.directive,
                edit.old,
                edit.new,
                edit.pool,
            )
            apply_to_file(moved)

            def moved_path(p: str) -> str:
                return p.replace(str(tmp_path / "before"), str(copy))  # noqa: B023 (called in this iteration)

            after = findings(moved_path(nginx), [moved_path(p) for p in fpms], root and moved_path(root))
            located = str(tmp_path / "before")

            def key(f: Finding) -> tuple[object, ...]:
                return tuple(str(x).replace(str(copy), located) for x in _identity(f))  # noqa: B023 (called in this iteration)

            old = {key(f) for f in before}
            unused = {f.pool for f in before if f.code == "pool_unreached"}
            new = [f for f in after if key(f) not in old and not (f.pool in unused and f.code in TIMEOUTS)]
            assert not new, f"{edit} (fix of {finding.code} at {finding.nginx_origins[0]}) creates {new[0]}"
            assert key(finding) not in {key(f) for f in after}, f"{edit} does not fix {finding.message}"
            tried += 1
    assert tried >= 2


def test_the_lab_no_longer_suggests_moving_the_api_pool(tmp_path: Path) -> None:
    # `listen = 127.0.0.1:19009` in [api] would fix /search/ and break /api/
    search = [
        f for f in findings(*lab(tmp_path)) if f.code == "fastcgi_pass_unreached" and f.target == "127.0.0.1:19009"
    ]
    assert search
    for f in search:
        assert (
            "`listen = 127.0.0.1:19009` in [api] or" not in f.fix
            and "or `listen = 127.0.0.1:19009` in [api]" not in f.fix
        )
        assert "`fastcgi_pass 127.0.0.1:19001;`" in f.fix
        assert "not `listen = 127.0.0.1:19009` in [api]: that would cause fastcgi_pass_unreached" in f.fix


def test_an_unused_pool_is_moved_where_nginx_looks(tmp_path: Path) -> None:
    # after an upgrade the site still names php7.4's socket; php8.2's [www] pool is reached by nothing
    (f,) = [f for f in findings(*debian_upgrade(tmp_path)) if f.code == "fastcgi_pass_unreached"]
    assert f.fix.startswith(
        "make both name the same socket: `fastcgi_pass unix:/run/php/php8.2-fpm.sock;` or "
        "`listen = /run/php/php7.4-fpm.sock` in [www]"
    ), f.fix
