"""Who may connect to a unix socket: the users/groups of this host, and the socket files themselves.

``check_config`` reasons about permissions from the configs alone; given a ``LiveHost`` it also
asks the machine (the real socket's owner and mode, the groups NGINX's user belongs to). Tests pass
a small fake holding real data; ``SystemHost`` asks the kernel through ``os.stat``/``pwd``/``grp``.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from typing import NamedTuple, Protocol


class SocketStat(NamedTuple):
    """A socket file's owner, group and permission bits (``mode & 0o777``); names when known."""

    uid: int
    gid: int
    mode: int
    owner: str | None
    group: str | None
    is_socket: bool


class LiveHost(Protocol):
    """What ``check_config`` may ask the machine it runs on."""

    def stat_socket(self, path: str) -> SocketStat | None:
        """The file at ``path``, or None when it does not exist."""

    def groups_of(self, user: str) -> frozenset[str] | None:
        """Every group ``user`` is in (primary and supplementary), or None for an unknown user."""

    def primary_group(self, user: str) -> str | None:
        """``user``'s login group, or None for an unknown user."""


class SystemHost:
    """``LiveHost`` backed by this machine."""

    def stat_socket(self, path: str) -> SocketStat | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return SocketStat(
            st.st_uid,
            st.st_gid,
            stat.S_IMODE(st.st_mode),
            _user_name(st.st_uid),
            _group_name(st.st_gid),
            stat.S_ISSOCK(st.st_mode),
        )

    def groups_of(self, user: str) -> frozenset[str] | None:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return None
        names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
        primary = _group_name(pw.pw_gid)
        return frozenset(names | ({primary} if primary else set()))

    def primary_group(self, user: str) -> str | None:
        try:
            return _group_name(pwd.getpwnam(user).pw_gid)
        except KeyError:
            return None


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def may_connect(user: str, groups: frozenset[str], owner: str, group: str, mode: int) -> bool:
    """Whether ``user`` (in ``groups``) may connect: connect(2) on a unix socket needs write permission.

    The kernel checks the owner bits for the owner, else the group bits for a member, else the
    other bits — a denied owner is not rescued by the group bits. root is never denied.
    """
    if user == "root":
        return True
    if user == owner:
        return bool(mode & 0o200)
    if group in groups:
        return bool(mode & 0o020)
    return bool(mode & 0o002)
