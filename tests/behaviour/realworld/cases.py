"""The real-world case suite (issue #19): logs pasted in public threads, each with the cause the thread
established (or what it left open), the labels those logs honestly allow, and where they come from.

The lines are the files of ``tests/corpus`` (copied verbatim from the threads; source, commit and licence in
``tests/corpus/*/PROVENANCE.md``): every line of a thread's files goes through ``badgateway replay``, without
configs unless the thread showed them. The label is what the logs allow, never more: a thread that found
PHP-FPM stopped, with only NGINX's `(2: No such file or directory)` pasted, is ``socket_missing`` here.
"""

from __future__ import annotations

from typing import NamedTuple

# (cause, pool, pool_source) of one incident
Expected = tuple[str, "str | None", "str | None"]


class Case(NamedTuple):
    name: str  # the corpus file stem: tests/corpus/{nginx-error,nginx-access,php-fpm}/<name>.log
    url: str
    thread: str  # what the thread established or left open; where not checked, its title
    expected: tuple[Expected, ...]


SOCKET_MISSING: Expected = ("socket_missing", None, None)
WWW = "www"
D = "distro_default"

CASES: tuple[Case, ...] = (
    # -- errno 2 on a unix socket, no configs: down or mismatched cannot be told apart
    Case(
        "issue-EasyEngine-easyengine-320",
        "https://github.com/EasyEngine/easyengine/issues/320",
        "502 on a new Laravel site: the php5-fpm socket NGINX names does not exist; the answer not checked here",
        (SOCKET_MISSING,),
    ),
    Case(
        "issue-TrafeX-docker-php-nginx-47",
        "https://github.com/TrafeX/docker-php-nginx/issues/47",
        "a config names php7.3-fpm.sock though the image's configs use localhost:9000; closed for inactivity",
        (SOCKET_MISSING,),
    ),
    Case(
        "issue-Varying-Vagrant-Vagrants-VVV-2059",
        "https://github.com/Varying-Vagrant-Vagrants/VVV/issues/2059",
        "php7.2-fpm's socket is missing in an old VVV box (the user symlinked php7.0's); upgrade advised",
        (SOCKET_MISSING,),
    ),
    Case(
        "issue-owncloud-client-1474",
        "https://github.com/owncloud/client/issues/1474",
        "'Plenty of \"No such file or directory\" errors in nginx': asked, no cause given",
        (SOCKET_MISSING,) * 4,
    ),
    Case(
        "issue-servisys-ispconfig_setup-129",
        "https://github.com/servisys/ispconfig_setup/issues/129",
        "title 'Nginx error after installation on ubuntu 16.04'; its conclusion not checked here",
        (SOCKET_MISSING,),
    ),
    Case(
        "issue-whatwedo-docker-base-images-38",
        "https://github.com/whatwedo/docker-base-images/issues/38",
        "title 'connect() to unix:/var/run/php-fpm.sock failed (2: No such file or directory)'; its conclusion "
        "not checked here",
        (SOCKET_MISSING,) * 2,
    ),
    # pool o1's FPM log (SIGTERMs, slow requests) is ten minutes after the error: no proof its master was down then
    Case(
        "issue-omega8cc-boa-462",
        "https://github.com/omega8cc/boa/issues/462",
        "title 'Nginx and php5-fpm not ls'; its conclusion not checked here",
        (SOCKET_MISSING,),
    ),
    # -- errno 13: listen.owner / listen.group / listen.mode
    Case(
        "issue-cachethq-cachet-3185",
        "https://github.com/cachethq/cachet/issues/3185",
        "fixed by listen.owner/listen.group = www-data, listen.mode = 0660 in www.conf",
        (("socket_permission", WWW, D),),
    ),
    Case(
        "issue-puphpet-puphpet-715",
        "https://github.com/puphpet/puphpet/issues/715",
        "fixed by listen.mode = 0666 in the pool config",
        (("socket_permission", WWW, D),),
    ),
    Case(
        "issue-servisys-ispconfig_setup-86",
        "https://github.com/servisys/ispconfig_setup/issues/86",
        "socket web1:client0 mode 0660; works over TCP instead; left open",
        (("socket_permission", "web1", "socket_name"),),
    ),
    Case(
        "issue-dokku-dokku-912",
        "https://github.com/dokku/dokku/issues/912",
        "NGINX's user may not open the buildpack's socket (SELinux suggested, ruled out); left open",
        (("socket_permission", "heroku.fcgi.5000", "socket_name"),),
    ),
    # `docker compose up` output: FPM started, NGINX refused the socket, its 50x page is missing (a 404 logged)
    Case(
        "issue-dreeveapp-dreeve-268.compose-prefixed",
        "https://github.com/dreeveapp/dreeve/issues/268",
        "permission denied on /tmp/php-fpm.sock right after FPM started in the container",
        (("socket_permission", WWW, D),),
    ),
    # -- TCP refused
    Case(
        "issue-EasyEngine-easyengine-567",
        "https://github.com/EasyEngine/easyengine/issues/567",
        "title 'HHVM Error: (111: Connection refused)'; its conclusion not checked here",
        (("tcp_refused", None, None),),
    ),
    Case(
        "issue-cachethq-cachet-2545",
        "https://github.com/cachethq/cachet/issues/2545",
        "title 'error 500 111:connection refused in docker'; its conclusion not checked here",
        (("tcp_refused", WWW, D),),
    ),
    Case(
        "issue-lewellyn-virtualmin-nginx-5",
        "https://github.com/lewellyn/virtualmin-nginx/issues/5",
        "title 'virtualmin nginx (111: Connection refused) while connecting to upstream'; its conclusion not "
        "checked here",
        (("tcp_refused", None, None),),
    ),
    Case(
        "issue-zhangyachen-zhangyachen.github.io-89",
        "https://github.com/zhangyachen/zhangyachen.github.io/issues/89",
        "title '502 VS 504'; its conclusion not checked here",
        (("tcp_refused", WWW, D),),
    ),
    # one request, two error lines (`*6552`): NGINX tried the host name's IPv4 address (refused), then its IPv6
    # one (101: no route); one incident, the refusal is the evidence, the second line rides along
    Case(
        "issue-engintron-engintron-1198",
        "https://github.com/engintron/engintron/issues/1198",
        "'any idea what the heck they are?': a proxied WordPress upload refused on 104.28.3.26:8080, then "
        "unreachable over IPv6, several a second; the answer not checked here",
        (("tcp_refused", None, None),),
    ),
    # -- no route to the upstream (113, 101): NGINX never reached the host, nothing says whether PHP-FPM runs there
    Case(
        "issue-atillay-docker-lemp-3",
        "https://github.com/atillay/docker-lemp/issues/3",
        "'fastcgi does not work': (113: No route to host) to the PHP container at 172.25.0.2:9000; the maintainer "
        "could not reproduce; left open (the thread's second line, another user's 'Primary script unknown', is a "
        "404)",
        (("unknown", WWW, D),),
    ),
    # -- resets: PHP-FPM closed the connection
    Case(
        "issue-ddev-ddev-2559",
        "https://github.com/ddev/ddev/issues/2559",
        "the worker was SIGKILLed (typically out of memory, said the maintainer); unrelated to ddev",
        (("child_crash", WWW, "fpm_log"),),
    ),
    Case(
        "issue-Andr3as-Codiad-CodeGit-6",
        "https://github.com/Andr3as/Codiad-CodeGit/issues/6",
        "title 'php5-fpm crashing when trying to push/pull'; its conclusion not checked here",
        (("upstream_reset", WWW, D),),
    ),
    Case(
        "issue-cakephp-cakephp-6748",
        "https://github.com/cakephp/cakephp/issues/6748",
        "title '502 Bad Gateway'; its conclusion not checked here",
        (("upstream_reset", WWW, D),),
    ),
    Case(
        "issue-opencart-opencart-5029",
        "https://github.com/opencart/opencart/issues/5029",
        "title 'Upstream Problem with Nginx+Fastcgi'; its conclusion not checked here",
        (("upstream_reset", WWW, D),),
    ),
    # `*1` twice, 2 s apart: the browser's next request on its keep-alive connection, a 502 of its own
    Case(
        "issue-phalcon-cphalcon-15210",
        "https://github.com/phalcon/cphalcon/issues/15210",
        "resets with php7.4-fpm + Phalcon 4.1; closed as a duplicate (Phalcon crashes)",
        (("upstream_reset", WWW, D),) * 3,
    ),
    Case(
        "issue-toteph42-identity_switch-34",
        "https://github.com/toteph42/identity_switch/issues/34",
        "resets on the plugin's refresh requests as clients grew",
        (("upstream_reset", WWW, D),) * 3,
    ),
    # -- NGINX's own read timeout (504)
    Case(
        "issue-PHPfox-Official-phpfox-v4-issues-1563",
        "https://github.com/PHPfox-Official/phpfox-v4-issues/issues/1563",
        "title 'Nginx Connection Timing Out'; its conclusion not checked here",
        (("nginx_timeout", WWW, D),),
    ),
    Case(
        "issue-YunoHost-Apps-nextcloud_ynh-605",
        "https://github.com/YunoHost-Apps/nextcloud_ynh/issues/605",
        "title 'upstream timed out (110: Connection timed out) while reading response header from upstream'; its "
        "conclusion not checked here",
        (("nginx_timeout", "php8.1-fpm-nextcloud", "socket_name"),),
    ),
    Case(
        "issue-budisteikul-openshift-cartridge-nginx-php7-7",
        "https://github.com/budisteikul/openshift-cartridge-nginx-php7/issues/7",
        "title '504 Gateway Time-out errors on latest update'; its conclusion not checked here",
        (("nginx_timeout", "php-581*******************f0", "socket_name"),),
    ),
    Case(
        "issue-cypht-org-cypht-1119.compose-prefixed",
        "https://github.com/cypht-org/cypht/issues/1119",
        "'FastCGI timeout (Not docker related)': requests outlive fastcgi_read_timeout",
        (("nginx_timeout", WWW, D),) * 3,
    ),
    Case(
        "issue-freescout-help-desk-freescout-3227",
        "https://github.com/freescout-help-desk/freescout/issues/3227",
        "title 'Upstream timed out (110: Connection timed out)'; its conclusion not checked here",
        (("nginx_timeout", "web11_f01dd6a2", "socket_name"),),
    ),
    Case(
        "issue-kubernetes-kubernetes-107268",
        "https://github.com/kubernetes/kubernetes/issues/107268",
        "title 'connection timed out'; its conclusion not checked here",
        (("nginx_timeout", WWW, D),) * 3,
    ),
    Case(
        "issue-ppy-osu-web-4682.compose-prefixed",
        "https://github.com/ppy/osu-web/issues/4682",
        "title '[docker] osu! page is timing out after successful build'; its conclusion not checked here",
        (("nginx_timeout", WWW, D),),
    ),
    Case(
        "issue-zabbix-zabbix-docker-732",
        "https://github.com/zabbix/zabbix-docker/issues/732",
        "title 'nginx fastcgi_send_timeout and fastcgi_read_timeout should match (or exceed) php max_execution_time'",
        (("nginx_timeout", WWW, D),),
    ),
    # -- headers too big
    Case(
        "issue-Varying-Vagrant-Vagrants-VVV-135",
        "https://github.com/Varying-Vagrant-Vagrants/VVV/issues/135",
        "title '502 due to too big response headers'; its conclusion not checked here",
        (("too_big_header", WWW, D),),
    ),
    Case(
        "issue-idno-idno-2742",
        "https://github.com/idno/idno/issues/2742",
        "title 'Diagnostics page 502 error upstream sent too big header'; its conclusion not checked here",
        (("too_big_header", WWW, D),),
    ),
    # -- every server of the group marked failed
    Case(
        "issue-rokerkony-dockerize-vps-3",
        "https://github.com/rokerkony/dockerize-vps/issues/3",
        "title 'Get error: no live upstreams while connecting to upstream'; its conclusion not checked here",
        (("no_live_upstreams", None, None),),
    ),
    Case(
        "issue-actframework-actframework-1007",
        "https://github.com/actframework/actframework/issues/1007",
        "title 'no live upstreams while connecting to upstream'; its conclusion not checked here",
        (("no_live_upstreams", None, None),),
    ),
    # -- not a 502 at all: "Primary script unknown" is PHP-FPM's 404, no incident
    Case(
        "issue-aschmelyun-docker-compose-laravel-17",
        "https://github.com/aschmelyun/docker-compose-laravel/issues/17",
        "'Primary script unknown': PHP-FPM answers 404 for a wrong script path",
        (),
    ),
)
