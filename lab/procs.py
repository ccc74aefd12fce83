"""Start and stop the lab's nginx and PHP-FPM masters; every process is tracked and torn down by id."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

NGINX = os.environ.get("BADGATEWAY_LAB_NGINX", "/usr/sbin/nginx")
PHP_FPM = os.environ.get("BADGATEWAY_LAB_PHP_FPM", "/usr/sbin/php-fpm8.2")


class LabError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the lab itself dies (even by SIGKILL), so nothing is left."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pgid_members(pgid: int) -> list[int]:
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            out.append(int(entry))
    return out


@dataclass
class Processes:
    """Every process the lab started (each is a session/process-group leader, so killpg reaches its workers)."""

    procs: dict[str, Proc] = field(default_factory=dict)
    pgids: set[int] = field(default_factory=set)

    def start(self, name: str, argv: list[str], stderr_path: Path) -> Proc:
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        err = open(stderr_path, "ab")
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            err.close()
        proc = Proc(name, popen, stderr_path)
        self.procs[name] = proc
        self.pgids.add(popen.pid)
        return proc

    def send(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        if proc.alive():
            os.kill(proc.pid, sig)

    def kill_group(self, name: str, sig: int = signal.SIGKILL) -> list[int]:
        """SIGKILL a master and all its workers at once (as the OOM killer or `kill -9 -PGID` would)."""
        proc = self.procs[name]
        members = _pgid_members(proc.pid)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.popen.wait(timeout=10)
        self._reap_group(proc.pid, timeout=5)
        return members

    def wait_exit(self, name: str, timeout: float) -> int | None:
        proc = self.procs[name]
        try:
            return proc.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _reap_group(self, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pgid_members(pgid):
                return True
            time.sleep(0.05)
        return False

    def stop_all(self, graceful: float = 5.0) -> list[str]:
        """Graceful stop (SIGQUIT to nginx, SIGTERM to FPM), then SIGKILL the group; returns what needed force."""
        forced: list[str] = []
        for name, proc in self.procs.items():
            if proc.alive():
                try:
                    os.kill(proc.pid, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + graceful
        for _name, proc in self.procs.items():
            left = max(0.1, deadline - time.monotonic())
            try:
                proc.popen.wait(timeout=left)
            except subprocess.TimeoutExpired:
                pass
        for pgid in sorted(self.pgids):
            if _pgid_members(pgid):
                forced.append(str(pgid))
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pgid in self.pgids:
            self._reap_group(pgid, timeout=5)
        return forced

    def leftovers(self) -> list[int]:
        return [pid for pgid in self.pgids for pid in _pgid_members(pgid)]


def wait_unix_socket(path: str, proc: Proc, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise LabError(
                f"{proc.name} exited with {proc.popen.returncode} before {path} appeared (see {proc.stderr_path})"
            )
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise LabError(f"{path} did not appear within {timeout}s ({proc.name})")


def wait_file_contains(path: Path, needle: str, timeout: float = 10.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if needle in path.read_text(errors="replace"):
                return
        except FileNotFoundError:
            pass
        if proc is not None and not proc.alive():
            tail = path.read_text(errors="replace").strip().splitlines()[-3:] if path.exists() else []
            raise LabError(
                f"{proc.name} exited with {proc.popen.returncode} before {needle!r} appeared in "
                f"{path}: {' | '.join(tail)}"
            )
        time.sleep(0.05)
    raise LabError(f"{needle!r} did not appear in {path} within {timeout}s")


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        r = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10)
        out["nginx"] = (r.stderr or r.stdout).strip()
    except OSError as exc:
        out["nginx"] = f"unavailable: {exc}"
    try:
        r = subprocess.run([PHP_FPM, "-v"], capture_output=True, text=True, timeout=10)
        out["php_fpm"] = r.stdout.splitlines()[0].strip() if r.stdout else r.stderr.strip()
    except OSError as exc:
        out["php_fpm"] = f"unavailable: {exc}"
    return out


def probe_backlog_capacity(family: str, tmpdir: Path, attempts: int = 6) -> int:
    """How many connections a listener with ``listen(fd, 0)`` queues before refusing more (kernel-dependent).

    Linux lets ``backlog + 1`` connections wait for ``accept()`` on both unix and TCP sockets; measuring it
    keeps the lab's saturation scenarios exact on other kernels too. unix: further non-blocking connects fail
    with EAGAIN; TCP: further SYNs are dropped, so the connect times out.
    """
    socks: list[socket.socket] = []
    if family == "unix":
        path = str(tmpdir / "probe.sock")
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    ok = 0
    try:
        for _ in range(attempts):
            if family == "unix":
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.setblocking(False)
                try:
                    c.connect(path)
                except BlockingIOError:
                    c.close()
                    break
            else:
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.settimeout(0.4)
                try:
                    c.connect(listener.getsockname())
                except (TimeoutError, OSError):
                    c.close()
                    break
            socks.append(c)
            ok += 1
    finally:
        for c in socks:
            c.close()
        listener.close()
        if family == "unix" and os.path.exists(path):
            os.unlink(path)
    return ok
