"""The lab's nginx and PHP-FPM configurations, PHP scripts and directory layout.

Everything is generated under one OUTDIR; every path inside the configs points into OUTDIR, so the configs
written to ``OUTDIR/conf/`` are exactly the ones the processes ran with (a replay can use them with
``--nginx-conf OUTDIR/conf/nginx.conf --fpm-conf OUTDIR/conf/php-fpm*.conf``). Log, pid and listen paths are
absolute (they must match what the logs say); ``include``s are relative to the including file's directory
(nginx resolves them against the -c file's directory, php-fpm against its -p prefix, which is OUTDIR/conf),
so a copied conf/ tree still resolves.

Besides lab.test and legacy.test (the same routes, two log formats), nginx serves web.test on ``ports.web``: plain
HTTP, no PHP, the app container ``location /orders/`` still fastcgi_passes to (``protocol_mismatch``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

# The main access log format (name "lab"): combined + timings, upstream address/status/time, connection id.
LAB_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" rt=$request_time ua="$upstream_addr" us="$upstream_status" '
    'urt="$upstream_response_time" cid=$connection'
)

# The JSON variant's format (name "lab_json", ``escape=json``): the usual JSON logging setup, an ISO 8601 time
# with its offset, numbers unquoted where nginx always writes a number, the upstream lists quoted.
LAB_JSON_LOG_FORMAT = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","remote_user":"$remote_user",'
    '"request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,'
    '"http_referer":"$http_referer","http_user_agent":"$http_user_agent","host":"$host",'
    '"upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",'
    '"upstream_response_time":"$upstream_response_time","connection":$connection}'
)

# A lab run's variant: "classic" (log_format lab, PHP-FPM at log_level notice) or "json-debug" (the lab.test
# server logs JSON to logs/access_json.log, every PHP-FPM master runs at log_level debug).
VARIANTS = ("classic", "json-debug")

NGINX_USER = ("nobody", "nogroup")
FPM_WORKER_USER = ("www-data", "www-data")


@dataclass(frozen=True)
class Pool:
    """One PHP-FPM pool: its name, master, listen address and the pool-file body after ``listen``."""

    name: str
    master: str  # "main" | "legacy" | "reports"
    listen: str  # absolute socket path or "127.0.0.1:PORT"
    settings: tuple[tuple[str, str], ...]
    comment: str = ""

    @property
    def is_unix(self) -> bool:
        return self.listen.startswith("/")

    @property
    def nginx_address(self) -> str:
        """How nginx names this pool's address in ``$upstream_addr`` / ``fastcgi_pass``."""
        return f"unix:{self.listen}" if self.is_unix else self.listen


@dataclass(frozen=True)
class Location:
    """One nginx location: its prefix and its upstream target (plus extra directives)."""

    prefix: str  # "/crash/" (a `^~` prefix location) or "~ \\.php$" / "/" (special)
    target: str | None  # "unix:/…sock", "127.0.0.1:PORT", "billing_backend" or None (static)
    directives: tuple[str, ...] = ()
    comment: str = ""
    # how nginx reaches the target: "fastcgi" (fastcgi_pass + fastcgi_params) or "http" (proxy_pass http://)
    protocol: str = "fastcgi"


@dataclass
class Ports:
    http: int
    http_combined: int
    api: int
    queue: int
    dead: int
    billing_a: int
    billing_b: int
    web: int  # a plain HTTP server nginx itself serves (server web.test): no PHP-FPM behind it


@dataclass
class Layout:
    """Paths and ports of one lab run."""

    out: Path
    ports: Ports
    pools: list[Pool] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    variant: str = "classic"

    # the variant -----------------------------------------------------------------------------------------
    @property
    def json_access(self) -> bool:
        return self.variant == "json-debug"

    @property
    def fpm_log_level(self) -> str:
        return "debug" if self.variant == "json-debug" else "notice"

    @property
    def lab_access_log(self) -> str:
        """The lab.test server's access log, relative to OUTDIR."""
        return "logs/access_json.log" if self.json_access else "logs/access.log"

    @property
    def lab_log_format(self) -> tuple[str, str]:
        """(name, format) of the lab.test server's access log."""
        return ("lab_json", LAB_JSON_LOG_FORMAT) if self.json_access else ("lab", LAB_LOG_FORMAT)

    # directories ----------------------------------------------------------------------------------------
    @property
    def conf(self) -> Path:
        return self.out / "conf"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def www(self) -> Path:
        return self.out / "www"

    @property
    def tmp(self) -> Path:
        return self.out / "tmp"

    def sock(self, name: str) -> str:
        return str(self.run / f"{name}.sock")

    # masters ---------------------------------------------------------------------------------------------
    MASTERS = ("main", "legacy", "reports")

    def master_conf(self, master: str) -> Path:
        return self.conf / ("php-fpm.conf" if master == "main" else f"php-fpm-{master}.conf")

    def master_pool_dir(self, master: str) -> Path:
        return self.conf / ("pool.d" if master == "main" else f"pool-{master}.d")

    def master_log(self, master: str) -> Path:
        return self.logs / ("php-fpm.log" if master == "main" else f"php-fpm-{master}.log")

    def master_pid(self, master: str) -> Path:
        return self.run / ("php-fpm.pid" if master == "main" else f"php-fpm-{master}.pid")

    def pool(self, name: str) -> Pool:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)

    def location(self, prefix: str) -> Location:
        for loc in self.locations:
            if loc.prefix == prefix:
                return loc
        raise KeyError(prefix)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PREFERRED_PORTS = {
    "http": 18080,
    "http_combined": 18081,
    "api": 19001,
    "queue": 19002,
    "dead": 19009,
    "billing_a": 19011,
    "billing_b": 19012,
    "web": 18082,
}


def pick_ports(stable: bool = True) -> Ports:
    """Stable ports when asked and free (so recorded runs read the same), distinct ephemeral ones otherwise."""
    chosen: dict[str, int] = {}
    for key, port in PREFERRED_PORTS.items():
        if not (stable and _port_free(port)):
            port = _ephemeral_port()
            while port in chosen.values() or port in PREFERRED_PORTS.values():
                port = _ephemeral_port()
        chosen[key] = port
    return Ports(**chosen)


def build_layout(out: Path, ports: Ports | None = None, variant: str = "classic") -> Layout:
    if variant not in VARIANTS:
        raise ValueError(f"unknown lab variant {variant!r}; valid: {', '.join(VARIANTS)}")
    lay = Layout(out=out, ports=ports or pick_ports(), variant=variant)
    common_log = (
        ("php_admin_flag[log_errors]", "on"),
        ("php_admin_flag[display_errors]", "off"),
        ("php_admin_flag[html_errors]", "off"),
    )
    unix_perm = (("listen.owner", NGINX_USER[0]), ("listen.group", NGINX_USER[1]), ("listen.mode", "0660"))

    def access(name: str) -> tuple[tuple[str, str], ...]:
        return (("access.log", str(lay.logs / "pool-access" / f"{name}-access.log")),)

    P = Pool
    lay.pools = [
        P(
            "www",
            "main",
            lay.sock("www"),
            unix_perm
            + (
                ("pm", "dynamic"),
                ("pm.max_children", "5"),
                ("pm.start_servers", "2"),
                ("pm.min_spare_servers", "1"),
                ("pm.max_spare_servers", "3"),
                ("request_slowlog_timeout", "1s"),
                ("slowlog", str(lay.logs / "slow.log")),
                ("request_terminate_timeout", "30s"),
                ("catch_workers_output", "yes"),
            )
            + access("www")
            + common_log,
            "the main application pool (healthy traffic, PHP errors, slowlog)",
        ),
        P(
            "api",
            "main",
            f"127.0.0.1:{lay.ports.api}",
            (
                ("pm", "static"),
                ("pm.max_children", "2"),
                ("request_terminate_timeout", "30s"),
            )
            + access("api")
            + common_log,
            "a healthy TCP pool",
        ),
        P(
            "slow",
            "main",
            lay.sock("slow"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "4"),
                ("request_terminate_timeout", "2s"),
                ("request_slowlog_timeout", "1s"),
                ("slowlog", str(lay.logs / "slow.log")),
            )
            + access("slow")
            + common_log,
            "request_terminate_timeout = 2s: scripts that sleep 5 s are killed (fpm_timeout)",
        ),
        P(
            "batch",
            "main",
            lay.sock("batch"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "4"),
                ("request_terminate_timeout", "20s"),
            )
            + access("batch")
            + common_log,
            "nginx gives up first here (fastcgi_read_timeout 2s → nginx_timeout)",
        ),
        P(
            "crash",
            "main",
            lay.sock("crash"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "2"),
                ("request_terminate_timeout", "30s"),
            )
            + access("crash")
            + common_log,
            "workers that die on a signal (child_crash)",
        ),
        P(
            "busy",
            "main",
            lay.sock("busy"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "1"),
                ("listen.backlog", "0"),
                ("request_terminate_timeout", "30s"),
            )
            + access("busy")
            + common_log,
            "one worker, backlog 0: a full unix listen queue → EAGAIN (pool_saturated, 502)",
        ),
        P(
            "queue",
            "main",
            f"127.0.0.1:{lay.ports.queue}",
            (
                ("pm", "ondemand"),
                ("pm.max_children", "1"),
                ("pm.process_idle_timeout", "30s"),
                ("listen.backlog", "0"),
                ("request_terminate_timeout", "30s"),
            )
            + access("queue")
            + common_log,
            "ondemand, one worker, backlog 0 on TCP: SYNs dropped → connect timeout (pool_saturated, 504)",
        ),
        P(
            "secure",
            "main",
            lay.sock("secure"),
            (
                ("listen.owner", "root"),
                ("listen.group", "root"),
                ("listen.mode", "0600"),
                ("pm", "static"),
                ("pm.max_children", "1"),
            )
            + common_log,
            "socket owned by root, mode 0600: nginx's workers (nobody) get EACCES (no access.log: "
            "no request ever reaches it)",
        ),
        P(
            "legacy",
            "legacy",
            lay.sock("legacy"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "2"),
            )
            + access("legacy")
            + common_log,
            "its master is stopped cleanly during the run (socket removed → errno 2)",
        ),
        P(
            "reports",
            "reports",
            lay.sock("reports"),
            unix_perm
            + (
                ("pm", "static"),
                ("pm.max_children", "2"),
            )
            + access("reports")
            + common_log,
            "its master and workers are SIGKILLed during the run (stale socket → errno 111)",
        ),
    ]
    pool_addr = {p.name: p.nginx_address for p in lay.pools}
    L = Location
    lay.locations = [
        L("/", None, ("try_files $uri $uri/ =404;",), "static files"),
        L("~ \\.php$", pool_addr["www"], (), "the application"),
        L("/api/", pool_addr["api"], (), "TCP pool"),
        L("/slow/", pool_addr["slow"], ("fastcgi_read_timeout 30s;",), "FPM kills at 2 s, nginx would wait 30 s"),
        L("/batch/", pool_addr["batch"], ("fastcgi_read_timeout 2s;",), "nginx gives up after 2 s"),
        L("/crash/", pool_addr["crash"], (), ""),
        L(
            "/big/",
            pool_addr["www"],
            ("fastcgi_buffer_size 1k;", "fastcgi_buffers 4 1k;", "fastcgi_busy_buffers_size 1k;"),
            "headers larger than 1k do not fit",
        ),
        L("/busy/", pool_addr["busy"], (), ""),
        L("/queue/", pool_addr["queue"], ("fastcgi_connect_timeout 1s;",), ""),
        L("/admin/", pool_addr["secure"], (), "socket mode 0600 root:root"),
        L("/legacy/", pool_addr["legacy"], (), ""),
        L("/reports/", pool_addr["reports"], (), ""),
        L("/shop/", f"unix:{lay.sock('php8.1-fpm')}", (), "left over from an upgrade: no pool listens there"),
        L("/search/", f"127.0.0.1:{lay.ports.dead}", (), "nothing listens on this port"),
        L(
            "/billing/",
            "billing_backend",
            ("fastcgi_connect_timeout 2s;",),
            "an upstream group whose servers are all down",
        ),
        L(
            "/orders/",
            f"127.0.0.1:{lay.ports.web}",
            (),
            "the app moved to a container that serves HTTP; fastcgi_pass still points at it (the answer starts "
            "with 'H', 72: not a FastCGI record)",
        ),
        L(
            "/proxy/",
            pool_addr["api"],
            (),
            "proxy_pass (HTTP) to the api pool's address: PHP-FPM speaks FastCGI only, resets and logs nothing",
            protocol="http",
        ),
    ]
    return lay


# ---------------------------------------------------------------------------------------------------------
# nginx

FASTCGI_PARAMS = """\
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;

fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;

fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;

fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;

# PHP only, required if PHP was built with --enable-force-cgi-redirect
fastcgi_param  REDIRECT_STATUS    200;
fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;
"""


def _location_block(lay: Layout, loc: Location, indent: str) -> str:
    head = (
        f"location {loc.prefix}"
        if loc.prefix.startswith("~")
        else (f"location {loc.prefix}" if loc.prefix == "/" else f"location ^~ {loc.prefix}")
    )
    lines = []
    if loc.comment:
        lines.append(f"{indent}# {loc.comment}")
    lines.append(f"{indent}{head} {{")
    if loc.target is not None and loc.protocol == "http":
        lines.append(f"{indent}    proxy_pass http://{loc.target};")
    elif loc.target is not None:
        lines.append(f"{indent}    include fastcgi_params;")
        lines.append(f"{indent}    fastcgi_pass {loc.target};")
    for d in loc.directives:
        lines.append(f"{indent}    {d}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def nginx_conf(lay: Layout) -> str:
    o = lay.out
    p = lay.ports
    locs = "\n\n".join(_location_block(lay, loc, "        ") for loc in lay.locations)
    fmt_name, fmt = lay.lab_log_format
    lab_format_decl = f"{fmt_name} escape=json '{fmt}'" if lay.json_access else f"{fmt_name} '{fmt}'"
    return f"""\
# badgateway lab: generated by lab/run.py; every path is inside {o}
# (includes are relative to this file's directory, so conf/ can be moved for a replay)
user {NGINX_USER[0]} {NGINX_USER[1]};
worker_processes 2;
daemon off;
pid {lay.run / "nginx.pid"};
lock_file {lay.run / "nginx.lock"};
error_log {lay.logs / "error.log"} info;

events {{
    worker_connections 256;
}}

http {{
    default_type text/plain;
    server_tokens off;
    keepalive_timeout 5s;

    log_format {lab_format_decl};

    client_body_temp_path {lay.tmp / "client_body"};
    fastcgi_temp_path {lay.tmp / "fastcgi"};
    proxy_temp_path {lay.tmp / "proxy"};
    uwsgi_temp_path {lay.tmp / "uwsgi"};
    scgi_temp_path {lay.tmp / "scgi"};

    fastcgi_read_timeout 30s;

    upstream billing_backend {{
        zone billing_backend 64k;
        server 127.0.0.1:{p.billing_a} max_fails=1 fail_timeout=300s;
        server 127.0.0.1:{p.billing_b} max_fails=1 fail_timeout=300s;
    }}

    # the main site: custom log_format "{fmt_name}"
    server {{
        listen 127.0.0.1:{p.http};
        server_name lab.test;
        root {lay.www};
        index index.php index.html;
        access_log {o / lay.lab_access_log} {fmt_name};

{locs}
    }}

    # a second site with the same routes, logging in the plain "combined" format
    server {{
        listen 127.0.0.1:{p.http_combined};
        server_name legacy.test;
        root {lay.www};
        index index.php index.html;
        access_log {lay.logs / "access_combined.log"} combined;

{locs}
    }}

    # a plain HTTP server, no PHP (an app container that serves HTTP): location /orders/ fastcgi_passes to it.
    # It reads each FastCGI request as a bad HTTP request line: a 400 in access_web.log, with the binary record
    # escaped; its own error log (info: "client sent invalid method") stays out of logs/, as another host's would
    server {{
        listen 127.0.0.1:{p.web};
        server_name web.test;
        access_log {lay.logs / "access_web.log"} combined;
        error_log {lay.run / "web-error.log"} info;

        location / {{
            return 200 "static\\n";
        }}
    }}
}}
"""


# ---------------------------------------------------------------------------------------------------------
# PHP-FPM


def fpm_master_conf(lay: Layout, master: str) -> str:
    return f"""\
; badgateway lab: PHP-FPM master "{master}" (generated by lab/run.py)
[global]
pid = {lay.master_pid(master)}
error_log = {lay.master_log(master)}
log_level = {lay.fpm_log_level}
daemonize = no
rlimit_core = 0
process_control_timeout = 2s

; relative to the prefix (php-fpm -p {lay.conf}), i.e. to this file's directory
include = {lay.master_pool_dir(master).name}/*.conf
"""


def fpm_pool_conf(lay: Layout, pool: Pool) -> str:
    lines = [
        f"; {pool.comment}" if pool.comment else "; pool",
        f"[{pool.name}]",
        f"user = {FPM_WORKER_USER[0]}",
        f"group = {FPM_WORKER_USER[1]}",
        f"listen = {pool.listen}",
    ]
    lines += [f"{k} = {v}" for k, v in pool.settings]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# PHP scripts (every location directory gets the same set)

SCRIPTS = {
    "index.php": """<?php
header('Content-Type: text/plain');
echo "ok id=", $_GET['id'] ?? '-', " pid=", getmypid(), "\\n";
""",
    "sleep.php": """<?php
// sleeps ?s= seconds (fractions allowed), then answers 200
$s = (float)($_GET['s'] ?? 1);
usleep((int)($s * 1000000));
header('Content-Type: text/plain');
echo "slept ", $s, " id=", $_GET['id'] ?? '-', "\\n";
""",
    "crash.php": """<?php
// the worker kills itself with ?sig=SEGV|KILL|ABRT before answering (posix; pcntl's SIG* constants are
// not loaded under FPM, hence the numbers)
$map = ['SEGV' => 11, 'KILL' => 9, 'ABRT' => 6, 'BUS' => 7];
$sig = $map[$_GET['sig'] ?? 'SEGV'] ?? 11;
posix_kill(getmypid(), $sig);
usleep(500000);
echo "still alive?\\n";
""",
    "fatal.php": """<?php
// an uncaught exception two calls deep: a PHP Fatal error with a multi-line stack trace → 500
function load_invoice(string $id): array {
    throw new RuntimeException("invoice $id not found in ledger");
}
function render_invoice(string $id): string {
    $inv = load_invoice($id);
    return implode(',', $inv);
}
echo render_invoice($_GET['id'] ?? 'none');
""",
    "warn.php": """<?php
// a PHP warning (logged through FastCGI stderr) but the request succeeds
$a = [];
$x = $a['missing_key'];
header('Content-Type: text/plain');
echo "ok with a warning id=", $_GET['id'] ?? '-', "\\n";
""",
    "stderr.php": """<?php
// writes to the worker's stderr (catch_workers_output = yes puts it into the FPM log)
file_put_contents('php://stderr', "audit: checkout id=" . ($_GET['id'] ?? '-') . "\\n");
header('Content-Type: text/plain');
echo "ok id=", $_GET['id'] ?? '-', "\\n";
""",
    "appstatus.php": """<?php
// the application itself answers ?code= (e.g. 502 when its own backend fails): nginx logs no error
http_response_code((int)($_GET['code'] ?? 502));
header('Content-Type: text/plain');
echo "payment provider did not answer id=", $_GET['id'] ?? '-', "\n";
""",
    "bigheader.php": """<?php
// an 8 KB cookie: does not fit fastcgi_buffer_size 1k
setcookie('session_blob', str_repeat('x', 8192));
header('Content-Type: text/plain');
echo "big header id=", $_GET['id'] ?? '-', "\\n";
""",
    "badstatus.php": """<?php
// a Status header that is not a number: nginx refuses the response (invalid_header, 502)
header('Status: abc');
echo "bad status id=", $_GET['id'] ?? '-', "\\n";
""",
    "nocolon.php": """<?php
// a header line without a colon (PHP passes it through as given): nginx refuses it (invalid_header, 502)
header('X-Trace a b');
echo "no colon id=", $_GET['id'] ?? '-', "\\n";
""",
}

SCRIPT_DIRS = (
    "",
    "api",
    "slow",
    "batch",
    "crash",
    "big",
    "busy",
    "queue",
    "admin",
    "legacy",
    "reports",
    "shop",
    "search",
    "billing",
)


def write_tree(lay: Layout) -> list[Path]:
    """Create OUTDIR's directories, configs and scripts; return the config files written."""
    for d in (lay.conf, lay.logs, lay.logs / "pool-access", lay.run, lay.www, lay.tmp):
        d.mkdir(parents=True, exist_ok=True)
    for d in (lay.out, lay.conf, lay.logs, lay.logs / "pool-access", lay.run, lay.www, lay.tmp):
        os.chmod(d, 0o755)
    for sub in SCRIPT_DIRS:
        d = lay.www / sub
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)
        for name, body in SCRIPTS.items():
            f = d / name
            f.write_text(body)
            os.chmod(f, 0o644)
    (lay.www / "robots.txt").write_text("User-agent: *\nDisallow:\n")
    os.chmod(lay.www / "robots.txt", 0o644)

    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    put(lay.conf / "fastcgi_params", FASTCGI_PARAMS)
    put(lay.conf / "nginx.conf", nginx_conf(lay))
    for master in lay.MASTERS:
        put(lay.master_conf(master), fpm_master_conf(lay, master))
        for pool in lay.pools:
            if pool.master == master:
                put(lay.master_pool_dir(master) / f"{pool.name}.conf", fpm_pool_conf(lay, pool))
    return written


def check_traversable(path: Path) -> None:
    """nginx workers (nobody) and FPM workers (www-data) must reach OUTDIR: every ancestor needs o+x."""
    for anc in [path, *path.parents]:
        mode = anc.stat().st_mode
        if not mode & 0o001:
            raise SystemExit(
                f"lab: {anc} is not traversable by other users (mode {oct(mode & 0o777)}); "
                f"nginx runs its workers as {NGINX_USER[0]} — choose an OUTDIR under /tmp"
            )
