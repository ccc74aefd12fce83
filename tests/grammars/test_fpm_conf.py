"""php-fpm.conf and pool files: ini lines, includes, $pool, typed pool settings, listen keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grammars.config_errors import ConfigError, Origin
from grammars.fpm_conf import listen_address_key, load_fpm_conf
from grammars.fpm_ini import parse_ini_line

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"
DEBIAN = FIXTURES / "debian"
APP = FIXTURES / "app"


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp / next(iter(files))


# ------------------------------------------------------------------ ini lines: (description, line, expected)
INI_LINES = [
    ("section", "[www]", ("section", "www", None)),
    ("section with blanks inside", "[ my pool ]", ("section", "my pool", None)),
    ("key = value", "listen = /run/php/php8.2-fpm.sock", ("entry", "listen", "/run/php/php8.2-fpm.sock")),
    (
        "no blanks around =",
        "include=/etc/php/8.2/fpm/pool.d/*.conf",
        ("entry", "include", "/etc/php/8.2/fpm/pool.d/*.conf"),
    ),
    ("trailing comment dropped", "pm = dynamic ; or static", ("entry", "pm", "dynamic")),
    ("comment line", "; listen.backlog = 511", ("blank", None, None)),
    ("blank line", "   ", ("blank", None, None)),
    (
        'double quotes keep ; and unescape \\"',
        'access.format = "%R ; \\"%m %r\\" %s"',
        ("entry", "access.format", '%R ; "%m %r" %s'),
    ),
    ("single quotes are literal", "slowlog = '/var/log/$pool;slow'", ("entry", "slowlog", "/var/log/$pool;slow")),
    (
        "bracketed key",
        "php_admin_value[error_log] = /var/log/fpm-php.www.log",
        ("entry", "php_admin_value[error_log]", "/var/log/fpm-php.www.log"),
    ),
    ("env key", "env[PATH] = /usr/local/bin:/usr/bin:/bin", ("entry", "env[PATH]", "/usr/local/bin:/usr/bin:/bin")),
    ("empty value", "listen.acl_users =", ("entry", "listen.acl_users", "")),
    ("CRLF line end", "pm = static\r\n", ("entry", "pm", "static")),
]


@pytest.mark.parametrize(("description", "line", "expected"), INI_LINES, ids=[s[0] for s in INI_LINES])
def test_ini_line(description: str, line: str, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_ini_line(line, "f.conf", 1) == expected


INI_ERRORS = [
    ("no =", "listen /run/php/a.sock"),
    ("unclosed section", "[www"),
    ("unclosed quote", 'access.format = "%R %u'),
    ("garbage key", "=value"),
]


@pytest.mark.parametrize(("description", "line"), INI_ERRORS, ids=[s[0] for s in INI_ERRORS])
def test_ini_errors_name_file_and_line(description: str, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_ini_line(line, "pool.d/www.conf", 7)
    assert str(info.value).startswith("pool.d/www.conf:7: ")


# ----------------------------------------------------------------------------------------------- pools
def test_pool_settings_are_typed_and_located(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "php-fpm.conf": (
                "[global]\nerror_log = /var/log/fpm.log\nlog_level = debug\nlog_limit = 8192\n"
                "[blog]\n"
                "listen = /run/php/$pool.sock\n"
                "listen.owner = www-data\nlisten.group = www-data\nlisten.mode = 0666\n"
                "listen.acl_users = nginx, apache\nlisten.acl_groups = www\nlisten.backlog = 64\n"
                "user = $pool\ngroup = $pool\npm = static\npm.max_children = 12\n"
                "request_terminate_timeout = 2m\nrequest_slowlog_timeout = 3s\nslowlog = /var/log/$pool.slow\n"
                'access.log = /var/log/$pool.access\naccess.format = "%R %u %s"\ncatch_workers_output = yes\n'
                "php_admin_value[max_execution_time] = 90\nphp_value[memory_limit] = 128M\n"
                "php_admin_flag[log_errors] = on\n"
            )
        },
    )
    conf = load_fpm_conf(str(main))
    f = str(main)
    assert (conf.error_log, conf.error_log_origin, conf.log_level, conf.log_limit) == (
        "/var/log/fpm.log",
        Origin(f, 2),
        "debug",
        8192,
    )
    pool = conf.pools["blog"]
    assert pool.origin == Origin(f, 5)
    assert (pool.listen, pool.listen_key) == ("/run/php/blog.sock", "unix:/run/php/blog.sock")
    assert (pool.listen_owner, pool.listen_group, pool.listen_mode) == ("www-data", "www-data", "0666")
    assert (pool.listen_acl_users, pool.listen_acl_groups, pool.listen_backlog) == (("nginx", "apache"), ("www",), 64)
    assert (pool.user, pool.group, pool.pm, pool.max_children) == ("blog", "blog", "static", 12)
    assert (pool.request_terminate_timeout_s, pool.request_slowlog_timeout_s) == (120.0, 3.0)
    assert (pool.slowlog, pool.access_log, pool.access_format) == (
        "/var/log/blog.slow",
        "/var/log/blog.access",
        "%R %u %s",
    )
    assert pool.catch_workers_output is True
    assert pool.php_admin_values == {"max_execution_time": "90", "log_errors": "on"}
    assert pool.php_values == {"memory_limit": "128M"}
    assert pool.max_execution_time_s == 90.0
    assert pool.origin_of("listen") == Origin(f, 6)
    assert pool.origin_of("pm.max_children") == Origin(f, 16)
    assert pool.origin_of("listen.mode") == Origin(f, 9)
    assert pool.origin_of("pm.max_spare_servers") == pool.origin  # unset: the pool header


def test_unset_keys_are_none(tmp_path: Path) -> None:
    pool = load_fpm_conf(str(write(tmp_path, {"php-fpm.conf": "[a]\nlisten = 9000\n"}))).pools["a"]
    assert (
        pool.listen_mode,
        pool.listen_backlog,
        pool.request_terminate_timeout_s,
        pool.max_execution_time_s,
        pool.catch_workers_output,
        pool.slowlog,
    ) == (None, None, None, None, None, None)
    assert pool.listen_key == "127.0.0.1:9000"


def test_include_glob_and_section_flow(tmp_path: Path) -> None:
    # keys before any header are global; a pool named twice is one pool; includes read in sorted order
    main = write(
        tmp_path,
        {
            "php-fpm.conf": "error_log = /var/log/a.log\n[global]\ninclude=pool.d/*.conf\n[b]\npm.max_children = 9\n",
            "pool.d/b.conf": "[b]\nlisten = /run/php/b.sock\n",
            "pool.d/a.conf": "[a]\nlisten = /run/php/a.sock\n",
            "pool.d/a.conf.dpkg-dist": "[ignored]\nlisten = 1\n",
        },
    )
    conf = load_fpm_conf(str(main))
    assert list(conf.pools) == ["a", "b"]
    assert (conf.pools["b"].listen, conf.pools["b"].max_children) == ("/run/php/b.sock", 9)
    assert conf.pools["b"].origin == Origin(str(tmp_path / "pool.d/b.conf"), 1)
    assert conf.error_log == "/var/log/a.log"
    assert [os.path.relpath(f, tmp_path) for f in conf.files] == ["php-fpm.conf", "pool.d/a.conf", "pool.d/b.conf"]


def test_relative_include_uses_prefix_when_given(tmp_path: Path) -> None:
    main = write(
        tmp_path, {"etc/php-fpm.conf": "include=etc/fpm.d/*.conf\n", "usr/etc/fpm.d/x.conf": "[x]\nlisten = 9001\n"}
    )
    assert list(load_fpm_conf(str(main), prefix=str(tmp_path / "usr")).pools) == ["x"]


FPM_ERRORS = [
    (
        "syntax error in an included pool file",
        {"php-fpm.conf": "include=pool.d/*.conf\n", "pool.d/www.conf": "[www]\nuser = www-data\nlisten /run/x\n"},
        "pool.d/www.conf:3",
        "syntax error",
    ),
    ("bad integer", {"php-fpm.conf": "[www]\npm.max_children = many\n"}, "php-fpm.conf:2", "invalid integer"),
    (
        "unknown time suffix",
        {"php-fpm.conf": "[www]\nrequest_terminate_timeout = 30x\n"},
        "php-fpm.conf:2",
        "unknown suffix",
    ),
    ("bad boolean", {"php-fpm.conf": "[www]\ncatch_workers_output = maybe\n"}, "php-fpm.conf:2", "boolean"),
    (
        "bad max_execution_time",
        {"php-fpm.conf": "[www]\n\nphp_admin_value[max_execution_time] = -\n"},
        "php-fpm.conf:3",
        "unknown suffix",
    ),
    (
        "include cycle",
        {"php-fpm.conf": "include=a.conf\n", "a.conf": "[a]\ninclude=php-fpm.conf\n"},
        "a.conf:2",
        "include cycle",
    ),
    ("missing plain include", {"php-fpm.conf": "\ninclude=/nonexistent/pool.conf\n"}, "php-fpm.conf:2", "open()"),
]


@pytest.mark.parametrize(("description", "files", "where", "text"), FPM_ERRORS, ids=[s[0] for s in FPM_ERRORS])
def test_errors_name_file_and_line(
    tmp_path: Path, description: str, files: dict[str, str], where: str, text: str
) -> None:
    main = write(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_fpm_conf(str(main))
    assert str(info.value).startswith(f"{tmp_path / where}: ")
    assert text in str(info.value)


PHP_TIMES = [
    # (value, seconds as FPM's fpm_conf_set_time reads it)
    ("30", 30.0),
    ("30s", 30.0),
    ("5m", 300.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    ("0", 0.0),
    ("1m30s", 1.0),  # only the last character is a unit: atoi("1m30") is 1
    ("xs", 0.0),  # atoi("x") is 0: the timeout is silently off
]


@pytest.mark.parametrize(("value", "seconds"), PHP_TIMES)
def test_php_time_as_fpm_reads_it(tmp_path: Path, value: str, seconds: float) -> None:
    main = write(tmp_path, {"php-fpm.conf": f"[www]\nrequest_terminate_timeout = {value}\n"})
    assert load_fpm_conf(str(main)).pools["www"].request_terminate_timeout_s == seconds


def test_unreadable_main_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="open"):
        load_fpm_conf(str(tmp_path / "missing.conf"))


# ------------------------------------------------------------------------------------------ real configs
def test_debian_stock_config() -> None:
    main = DEBIAN / "etc/php/8.2/fpm/php-fpm.conf"
    www_conf = str(DEBIAN / "etc/php/8.2/fpm/pool.d/www.conf")
    conf = load_fpm_conf(str(main), root=str(DEBIAN))
    assert (conf.error_log, conf.error_log_origin) == ("/var/log/php8.2-fpm.log", Origin(str(main), 26))
    assert conf.global_settings["pid"].value == "/run/php/php8.2-fpm.pid"
    assert list(conf.pools) == ["www"]
    www = conf.pools["www"]
    assert www.origin == Origin(www_conf, 4)
    assert (www.listen, www.origin_of("listen")) == ("/run/php/php8.2-fpm.sock", Origin(www_conf, 41))
    assert (www.user, www.group, www.listen_owner, www.listen_group) == ("www-data",) * 4
    assert (www.pm, www.max_children, www.listen_mode, www.request_terminate_timeout_s) == ("dynamic", 5, None, None)


def test_app_tree_pool_substitution_and_relative_include() -> None:
    conf = load_fpm_conf(str(APP / "etc/php/8.2/fpm/php-fpm.conf"), root=str(APP))
    assert list(conf.pools) == ["api", "api-tcp", "shop"]
    shop, api = conf.pools["shop"], conf.pools["api"]
    assert (shop.listen, shop.slowlog) == ("/run/php/shop.sock", "/var/log/php-fpm/shop.slow.log")
    assert shop.php_admin_values["error_log"] == "/var/log/php-fpm/shop.error.log"
    assert shop.access_format == '%R - %u %t "%m %r%Q%q" %s %f %{mili}d %{kilo}M %C%%'
    assert (shop.request_terminate_timeout_s, shop.max_execution_time_s, shop.listen_backlog) == (110.0, 100.0, 1024)
    assert (api.listen, api.listen_acl_users, api.listen_acl_groups) == ("/run/php/api.sock", ("www-data",), ("adm",))
    assert conf.pools["api-tcp"].listen_key == "127.0.0.1:9001"
    assert (conf.log_level, conf.log_limit) == ("notice", 4096)


# ------------------------------------------------------------------------------------------ listen keys
LISTEN_KEYS = [
    ("nginx unix: prefix", "unix:/run/php/a.sock", "unix:/run/php/a.sock"),
    ("fpm bare path", "/run/php/a.sock", "unix:/run/php/a.sock"),
    ("nginx upstream field form", "fastcgi://unix:/run/php/a.sock:", "unix:/run/php/a.sock"),
    ("fpm port only: all addresses", "9000", "127.0.0.1:9000"),
    ("loopback", "127.0.0.1:9000", "127.0.0.1:9000"),
    ("localhost", "localhost:9000", "127.0.0.1:9000"),
    ("ipv6 wildcard", "[::]:9000", "127.0.0.1:9000"),
    ("ipv4 wildcard", "0.0.0.0:9000", "127.0.0.1:9000"),
    ("ipv6 loopback", "[::1]:9000", "127.0.0.1:9000"),
    ("other host kept", "10.0.0.5:9000", "10.0.0.5:9000"),
    ("host name lower-cased", "PHP.internal:9000", "php.internal:9000"),
    ("upstream name unchanged", "php_backend", "php_backend"),
]


@pytest.mark.parametrize(("description", "listen", "key"), LISTEN_KEYS, ids=[s[0] for s in LISTEN_KEYS])
def test_listen_address_key(description: str, listen: str, key: str) -> None:
    assert listen_address_key(listen) == key


def test_domain_mismatch_example_keys_differ() -> None:
    # socket_mismatch (docs/causes.md): nginx and the pool name different sockets; the keys must not collide
    assert listen_address_key("unix:/run/php/php8.2-fpm.sock") != listen_address_key("/run/php/php-fpm.sock")
