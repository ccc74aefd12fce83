"""nginx.conf: syntax, includes and extraction, table-driven, on real Debian files and a PHP shop tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammars.config_errors import ConfigError, Origin
from grammars.nginx_conf import AccessLog, ErrorLog, LogFormat, UpstreamServer, load_nginx_conf
from grammars.nginx_syntax import Directive, parse_nginx_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "configs"
DEBIAN = FIXTURES / "debian"
APP = FIXTURES / "app"


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp / next(iter(files))


# ---------------------------------------------------------------- syntax: (description, text, [(name, args)])
SYNTAX = [
    ("simple directive", "user www-data;", [("user", ("www-data",))]),
    ("no arguments, empty block", "events {}", [("events", ())]),
    ("regex location keeps its backslash and $", r"location ~ \.php$ { }", [("location", ("~", r"\.php$"))]),
    ("double quotes with escapes", r'add_header X "a \"b\" \\ c";', [("add_header", ("X", 'a "b" \\ c'))]),
    (
        "single quotes keep double quotes",
        "log_format m '\"$request\" $status';",
        [("log_format", ("m", '"$request" $status'))],
    ),
    ("other escapes stay as written", r'rewrite "^/(\d+)$" /p?id=$1;', [("rewrite", (r"^/(\d+)$", "/p?id=$1"))]),
    ("${var} braces are part of the word", "set $x ${host}_a;", [("set", ("$x", "${host}_a"))]),
    ("# starts a comment only at a token start", "a b#c; # comment\n", [("a", ("b#c",))]),
    ("# inside quotes is text", 'a "#x";', [("a", ("#x",))]),
    ("tabs and newlines between arguments", "listen\t80\n  default_server;", [("listen", ("80", "default_server"))]),
    ("braces need not be spaced", "http{server{listen 80;}}", [("http", ())]),
    ("empty quoted argument", "a '';", [("a", ("",))]),
    ("comment only", "# nothing here\n", []),
]


@pytest.mark.parametrize(("description", "text", "expected"), SYNTAX, ids=[s[0] for s in SYNTAX])
def test_syntax(description: str, text: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    tree = parse_nginx_text(text, "t.conf")
    assert [(d.name, d.args) for d in tree] == expected


def test_lines_with_tabs_and_crlf() -> None:
    tree = parse_nginx_text("# head\r\n\tuser a;\r\n\t\t# c\r\n\tpid /run/x.pid;\r\n", "t.conf")
    assert [(d.name, d.origin.line) for d in tree] == [("user", 2), ("pid", 4)]


def test_nested_blocks_keep_lines() -> None:
    tree = parse_nginx_text("http {\n  server {\n    listen 80;\n  }\n}\n", "t.conf")
    listen = tree[0].block[0].block[0]  # type: ignore[index]
    assert (listen.name, listen.origin) == ("listen", Origin("t.conf", 3))


# ------------------------------------------------- syntax errors: (description, text, expected "file:line")
SYNTAX_ERRORS = [
    ("missing semicolon before }", "server {\n  listen 80\n}\n", "t.conf:3"),
    ("missing closing brace", "http {\n  server {\n  }\n", "t.conf:4"),
    ("extra closing brace", "events {\n}\n}\n", "t.conf:3"),
    ("unterminated double quote", 'user "www-data;\n', "t.conf:1"),
    ("directive cut at end of file", "events {}\nuser www-data", "t.conf:2"),
    ("semicolon without a name", "events {}\n;\n", "t.conf:2"),
    ("stray quote after a token start", "a 'b' 'c\n", "t.conf:1"),
    ("tab-indented, as Debian writes it", "http {\n\tserver {\n\t\tlisten 80\n\t}\n}\n", "t.conf:4"),
]


@pytest.mark.parametrize(("description", "text", "where"), SYNTAX_ERRORS, ids=[s[0] for s in SYNTAX_ERRORS])
def test_syntax_errors_name_file_and_line(description: str, text: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_nginx_text(text, "t.conf")
    assert str(info.value).startswith(where + ": ")
    assert isinstance(info.value, ValueError)


def test_hostile_nesting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_nginx_text("a {" * 5000 + "}" * 5000, "t.conf")


# ----------------------------------------------------------------------------------------------- includes
def test_include_glob_relative_to_conf_prefix(tmp_path: Path) -> None:
    # nginx resolves snippets/x.conf against the main file's directory, not the including file's
    main = write(
        tmp_path,
        {
            "nginx.conf": "http { include sites/*.conf; }",
            "sites/b.conf": "server { location / { include snippets/php.conf; } }",
            "sites/a.conf": "server { server_name a; }",
            "snippets/php.conf": "fastcgi_pass unix:/run/php/a.sock;",
        },
    )
    conf = load_nginx_conf(str(main))
    assert [os.path.relpath(f, tmp_path) for f in conf.files] == [
        "nginx.conf",
        "sites/a.conf",
        "sites/b.conf",
        "snippets/php.conf",
    ]  # glob order is sorted
    assert conf.fastcgi_passes[0].origin == Origin(str(tmp_path / "snippets/php.conf"), 1)


def test_include_falls_back_to_the_including_files_directory(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": "include conf/site.conf;",
            "conf/site.conf": "include part.conf;",
            "conf/part.conf": "user nginx;",
        },
    )
    assert load_nginx_conf(str(main)).user == ("nginx", "nginx")


def test_include_prefix_argument(tmp_path: Path) -> None:
    main = write(tmp_path, {"a/nginx.conf": "include extra.conf;", "prefix/extra.conf": "user web web;"})
    assert load_nginx_conf(str(main), prefix=str(tmp_path / "prefix")).user == ("web", "web")


def test_glob_without_match_is_fine(tmp_path: Path) -> None:
    main = write(tmp_path, {"nginx.conf": "include conf.d/*.conf;\nuser a;"})
    assert load_nginx_conf(str(main)).user == ("a", "a")


INCLUDE_ERRORS = [
    (
        "missing plain include names the include line",
        {"nginx.conf": "events {}\ninclude nope.conf;"},
        "nginx.conf:2",
        "open()",
    ),
    (
        "cycle through a glob",
        {"nginx.conf": "include a.conf;", "a.conf": "\ninclude b*.conf;", "b.conf": "include a.conf;"},
        "b.conf:1",
        "include cycle",
    ),
    ("self include", {"nginx.conf": "http {\ninclude nginx.conf;\n}"}, "nginx.conf:2", "include cycle"),
    (
        "syntax error inside an included file names that file",
        {"nginx.conf": "include site.conf;", "site.conf": "server {\n listen 80\n}"},
        "site.conf:3",
        "unexpected",
    ),
    ("include with two arguments", {"nginx.conf": "include a b;"}, "nginx.conf:1", "number of arguments"),
]


@pytest.mark.parametrize(("description", "files", "where", "text"), INCLUDE_ERRORS, ids=[s[0] for s in INCLUDE_ERRORS])
def test_include_errors(tmp_path: Path, description: str, files: dict[str, str], where: str, text: str) -> None:
    main = write(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_nginx_conf(str(main))
    assert str(info.value).startswith(str(tmp_path / where) + ": ")
    assert text in str(info.value)


# --------------------------------------------------------------------------------------------- extraction
def load_text(tmp_path: Path, text: str) -> object:
    return load_nginx_conf(str(write(tmp_path, {"nginx.conf": text})))


def test_log_format_concatenates_strings_and_keeps_escape(tmp_path: Path) -> None:
    conf = load_nginx_conf(
        str(
            write(
                tmp_path,
                {
                    "nginx.conf": (
                        "http {\n log_format main '$remote_addr - [$time_local] '\n   '\"$request\" $status';\n"
                        " log_format j escape=json '{\"s\":$status}';\n}"
                    )
                },
            )
        )
    )
    assert conf.log_formats == {
        "main": LogFormat(
            '$remote_addr - [$time_local] "$request" $status', "default", Origin(str(tmp_path / "nginx.conf"), 2)
        ),
        "j": LogFormat('{"s":$status}', "json", Origin(str(tmp_path / "nginx.conf"), 4)),
    }


ACCESS_LOGS = [
    ("default format is combined", "access_log /var/log/a.log;", ("/var/log/a.log", "combined")),
    ("named format", "access_log /var/log/a.log main;", ("/var/log/a.log", "main")),
    ("buffer without format", "access_log /var/log/a.log buffer=32k;", ("/var/log/a.log", "combined")),
    ("format and buffer", "access_log /var/log/a.log main buffer=32k flush=5s;", ("/var/log/a.log", "main")),
    ("off", "access_log off;", ("off", "")),
    ("syslog", "access_log syslog:server=10.0.0.1 main;", ("syslog:server=10.0.0.1", "main")),
]


@pytest.mark.parametrize(("description", "line", "expected"), ACCESS_LOGS, ids=[s[0] for s in ACCESS_LOGS])
def test_access_log(tmp_path: Path, description: str, line: str, expected: tuple[str, str]) -> None:
    conf = load_nginx_conf(str(write(tmp_path, {"nginx.conf": f"http {{\n server {{\n  {line}\n }}\n}}"})))
    assert conf.access_logs == (AccessLog(*expected, Origin(str(tmp_path / "nginx.conf"), 3)),)


USERS = [
    ("user and group", "user www-data adm;", ("www-data", "adm")),
    ("group omitted: same name as the user", "user nginx;", ("nginx", "nginx")),
    ("unset", "events {}", None),
]


@pytest.mark.parametrize(("description", "text", "expected"), USERS, ids=[s[0] for s in USERS])
def test_user(tmp_path: Path, description: str, text: str, expected: tuple[str, str] | None) -> None:
    conf = load_nginx_conf(str(write(tmp_path, {"nginx.conf": text})))
    assert conf.user == expected
    assert conf.effective_user == (expected or ("nobody", "nogroup"))


TIMEOUTS = [
    # (description, http, server, location, expected (read, send, connect))
    ("defaults", "", "", "", (60.0, 60.0, 60.0)),
    ("http level inherited", "fastcgi_read_timeout 2m;", "", "", (120.0, 60.0, 60.0)),
    ("server overrides http", "fastcgi_read_timeout 2m;", "fastcgi_read_timeout 30;", "", (30.0, 60.0, 60.0)),
    (
        "location overrides all",
        "fastcgi_send_timeout 1h;",
        "fastcgi_send_timeout 10s;",
        "fastcgi_send_timeout 500ms; fastcgi_connect_timeout 1m30s;",
        (60.0, 0.5, 90.0),
    ),
    (
        "set after the fastcgi_pass still applies",
        "",
        "",
        "fastcgi_pass x:1; fastcgi_read_timeout 5s;",
        (5.0, 60.0, 60.0),
    ),
]


@pytest.mark.parametrize(
    ("description", "http", "server", "location", "expected"), TIMEOUTS, ids=[s[0] for s in TIMEOUTS]
)
def test_timeouts_inherit(
    tmp_path: Path, description: str, http: str, server: str, location: str, expected: tuple[float, float, float]
) -> None:
    if "fastcgi_pass" not in location:
        location = "fastcgi_pass 127.0.0.1:9000; " + location
    conf = load_nginx_conf(
        str(
            write(
                tmp_path,
                {"nginx.conf": (f"http {{ {http}\n server {{ {server}\n location ~ \\.php$ {{ {location} }} }} }}")},
            )
        )
    )
    (fp,) = conf.fastcgi_passes
    assert (fp.read_timeout_s, fp.send_timeout_s, fp.connect_timeout_s) == expected


def test_fastcgi_pass_context_and_origins(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                "http {\n"
                " fastcgi_buffer_size 16k;\n"
                " server {\n"
                "  listen 80;\n  listen [::]:8080 ipv6only=on;\n"
                "  server_name a.example b.example;\n"
                "  location /api/ {\n"
                "   fastcgi_buffers 16 8k;\n"
                "   fastcgi_intercept_errors on;\n"
                "   location ~ \\.php$ {\n"
                "    if ($request_method = POST) { fastcgi_pass unix:/run/php/post.sock; }\n"
                "    fastcgi_pass unix:/run/php/api.sock;\n"
                "   }\n  }\n }\n}\n"
            )
        },
    )
    conf = load_nginx_conf(str(main))
    post, api = conf.fastcgi_passes
    f = str(main)
    assert (api.target, api.server_names, api.location, api.listens, api.origin) == (
        "unix:/run/php/api.sock",
        ("a.example", "b.example"),
        r"~ \.php$",
        ("80", "[::]:8080"),
        Origin(f, 12),
    )
    assert (api.buffer_size, api.buffer_size_origin) == (16384, Origin(f, 2))
    assert (api.buffers, api.buffers_origin) == ((16, 8192), Origin(f, 8))
    assert (api.intercept_errors, api.intercept_errors_origin) == (True, Origin(f, 9))
    assert api.read_timeout_origin is None  # nginx's default
    assert (post.target, post.location, post.origin) == ("unix:/run/php/post.sock", r"~ \.php$", Origin(f, 11))


def test_upstreams_and_error_logs(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "nginx.conf": (
                "error_log /var/log/nginx/error.log warn;\n"
                "http {\n upstream php { server unix:/run/php/a.sock weight=5;\n  server 10.0.0.2:9000 backup; }\n"
                " error_log /var/log/nginx/http.log;\n}"
            )
        },
    )
    f = str(main)
    conf = load_nginx_conf(f)
    assert conf.upstreams == {
        "php": (UpstreamServer("unix:/run/php/a.sock", Origin(f, 3)), UpstreamServer("10.0.0.2:9000", Origin(f, 4)))
    }
    assert conf.error_logs == (
        ErrorLog("/var/log/nginx/error.log", "warn", Origin(f, 1)),
        ErrorLog("/var/log/nginx/http.log", "error", Origin(f, 5)),
    )


BAD_VALUES = [
    ("bad time unit", "fastcgi_read_timeout 10x;", "fastcgi_read_timeout"),
    ("bad size", "fastcgi_buffer_size big;", "fastcgi_buffer_size"),
    ("buffers needs two values", "fastcgi_buffers 8;", "fastcgi_buffers"),
    ("flag must be on or off", "fastcgi_intercept_errors yes;", "fastcgi_intercept_errors"),
    ("unknown escape", "log_format x escape=xml '$status';", "escaping"),
    ("log_format without a format", "log_format x;", "log_format"),
    ("fastcgi_pass without a target", "server { location / { fastcgi_pass; } }", "fastcgi_pass"),
]


@pytest.mark.parametrize(("description", "line", "text"), BAD_VALUES, ids=[s[0] for s in BAD_VALUES])
def test_bad_values_are_located(tmp_path: Path, description: str, line: str, text: str) -> None:
    main = write(tmp_path, {"nginx.conf": f"http {{\n{line}\n}}"})
    with pytest.raises(ConfigError) as info:
        load_nginx_conf(str(main))
    assert str(info.value).startswith(f"{main}:2: ") and text in str(info.value)


# ------------------------------------------------------------------------------------------ real configs
def test_debian_stock_config() -> None:
    main = DEBIAN / "etc/nginx/nginx.conf"
    conf = load_nginx_conf(str(main), root=str(DEBIAN))
    assert conf.user == ("www-data", "www-data")
    assert conf.user_origin == Origin(str(main), 1)
    assert conf.access_logs == (AccessLog("/var/log/nginx/access.log", "combined", Origin(str(main), 40)),)
    assert conf.error_logs == (ErrorLog("/var/log/nginx/error.log", "error", Origin(str(main), 4)),)
    assert conf.fastcgi_passes == ()  # the PHP location is commented out in the stock site
    assert conf.log_formats == {} and conf.upstreams == {}
    assert [os.path.relpath(f, DEBIAN) for f in conf.files] == [
        "etc/nginx/nginx.conf",
        "etc/nginx/mime.types",
        "etc/nginx/sites-enabled/default",
    ]


def test_debian_php_snippet_chain() -> None:
    # snippets/fastcgi-php.conf includes fastcgi.conf: relative to the conf prefix, as nginx does
    conf = load_nginx_conf(str(DEBIAN / "etc/nginx/snippets/fastcgi-php.conf"), prefix=str(DEBIAN / "etc/nginx"))
    assert [os.path.basename(f) for f in conf.files] == ["fastcgi-php.conf", "fastcgi.conf"]


def test_app_tree() -> None:
    conf = load_nginx_conf(str(APP / "etc/nginx/nginx.conf"), root=str(APP))
    site = str(APP / "etc/nginx/sites-enabled/shop.conf")
    assert conf.log_formats["main"].fmt.endswith('us="$upstream_status" cid=$connection')
    assert conf.log_formats["json_combined"].escape == "json"
    assert [(a.path, a.format_name) for a in conf.access_logs] == [
        ("/var/log/nginx/access.log", "main"),
        ("/var/log/nginx/shop.access.log", "json_combined"),
        ("off", ""),
    ]
    assert [(p.target, p.location, p.read_timeout_s, p.buffer_size) for p in conf.fastcgi_passes] == [
        ("unix:/run/php/shop.sock", r"~ \.php$", 120.0, 32768),
        ("php_api", r"~ ^/api/.+\.php$", 300.0, 4096),
        ("unix:/run/php/shop.sock", "= /fpm-status", 120.0, 4096),
    ]
    assert conf.fastcgi_passes[1].read_timeout_origin == Origin(site, 25)
    assert [s.server for s in conf.upstreams["php_api"]] == ["unix:/run/php/api.sock", "127.0.0.1:9001"]


# ------------------------------------------------------------------------------------- property, hostile
_NAME = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
_ARG = st.text(st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=12)


def _quote(arg: str) -> str:
    """Write an argument the way an operator would: bare when safe, else double-quoted and escaped."""
    if arg and all(c.isalnum() or c in "/._-:=$~^*" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t").replace("\n", "\\n") + '"'


_TREE = st.recursive(
    st.lists(st.tuples(_NAME, st.lists(_ARG, max_size=3), st.none()), max_size=3),
    lambda inner: st.lists(st.tuples(_NAME, st.lists(_ARG, max_size=2), inner), max_size=3),
    max_leaves=12,
)


def _render(tree: list[tuple[str, list[str], object]]) -> str:
    out = []
    for name, args, block in tree:
        head = " ".join([name, *map(_quote, args)])
        out.append(f"{head} {{\n{_render(block)}}}\n" if isinstance(block, list) else f"{head}; # c\n")
    return "".join(out)


def _shape(tree: tuple[Directive, ...]) -> list[tuple[str, list[str], object]]:
    return [(d.name, list(d.args), None if d.block is None else _shape(d.block)) for d in tree]


@settings(max_examples=200, deadline=None)
@given(_TREE)
def test_rendered_trees_parse_back(tree: list[tuple[str, list[str], object]]) -> None:
    assert _shape(parse_nginx_text(_render(tree), "t.conf")) == tree


@pytest.mark.parametrize(
    "text",
    ['a "' + '\\"' * 100_000, "a " + '"' * 100_001 + ";", "x" * 1_000_000, "a " + "{" * 3000],
    ids=["escapes", "quotes", "1MB word", "open braces"],
)
def test_hostile_input_fails_in_bounded_time(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError):
        parse_nginx_text(text, "t.conf")
    assert time.perf_counter() - start < 5


def test_config_error_and_origin_text() -> None:
    err = ConfigError("/etc/nginx/nginx.conf", 12, 'unexpected "}"')
    assert str(err) == '/etc/nginx/nginx.conf:12: unexpected "}"'
    assert (err.file, err.line, err.message, err.origin) == (
        "/etc/nginx/nginx.conf",
        12,
        'unexpected "}"',
        Origin("/etc/nginx/nginx.conf", 12),
    )
    assert str(ConfigError("x.conf", 0, "open() failed")) == "x.conf: open() failed"
    assert str(Origin("pool.d/www.conf", 41)) == "pool.d/www.conf:41"
