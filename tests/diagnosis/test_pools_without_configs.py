"""Pools without configs (issue #19): the distributions' default sockets and ports name pool ``www``; a pool
listening on every address is the pool NGINX reaches at that port on the machine's own address."""

from __future__ import annotations

import pytest

from processor.diagnosis.causes import pool_guess
from processor.diagnosis.topology import PoolInfo, Topology


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("unix:/run/php/php8.2-fpm.sock", ("www", "distro_default")),  # Debian 12
        ("unix:/var/run/php/php7.4-fpm.sock", ("www", "distro_default")),  # Ubuntu 20.04
        ("unix:/var/run/php5-fpm.sock", ("www", "distro_default")),  # Debian 8
        ("unix:/run/php-fpm/www.sock", ("www", "socket_name")),  # RHEL 8/9: its name says it
        ("unix:/var/run/php-fpm/php-fpm.sock", ("www", "distro_default")),
        ("127.0.0.1:9000", ("www", "distro_default")),  # Alpine's www.conf, the official image's `listen = 9000`
        ("172.19.0.2:9000", ("www", "distro_default")),  # docker compose: the php container's default pool
        ("unix:/run/php/php8.1-fpm-nextcloud.sock", ("php8.1-fpm-nextcloud", "socket_name")),  # not a default
        ("unix:/run/php/mypool.sock", ("mypool", "socket_name")),
        ("127.0.0.1:9009", None),
    ],
)
def test_pool_guess(upstream: str, expected: tuple[str, str] | None) -> None:
    assert pool_guess(upstream) == expected


def _pool(name: str, listen: str) -> PoolInfo:
    from processor.diagnosis.topology import address_key

    return PoolInfo(name, listen, address_key(listen) or "", f"pool.d/{name}.conf:4", "php-fpm.conf")


@pytest.mark.parametrize("listen", ["0.0.0.0:9001", "[::]:9001", "9001"])
def test_a_wildcard_listen_is_reached_at_the_machines_address(listen: str) -> None:
    topology = Topology(pools=(_pool("api", listen), _pool("www", "/run/php/www.sock")))
    pool = topology.pool_at("fastcgi://10.0.0.2:9001")
    assert pool is not None and pool.name == "api"
    assert topology.pool_at("10.0.0.2:9002") is None


def test_a_loopback_listen_is_not_reached_from_elsewhere_and_two_wildcards_are_ambiguous() -> None:
    assert Topology(pools=(_pool("api", "127.0.0.1:9001"),)).pool_at("10.0.0.2:9001") is None
    two = Topology(pools=(_pool("a", "0.0.0.0:9001"), _pool("b", "[::]:9001")))
    assert two.pool_at("10.0.0.2:9001") is None
