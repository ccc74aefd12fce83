"""The lab's HTTP client: one request per connection, loopback only, every request tagged with its id."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

USER_AGENT = "badgateway-lab/1.0 (+https://github.com/badgateway)"


@dataclass
class Request:
    """One planned request and, once sent, what came back."""

    id: str
    path: str  # path plus optional extra query ("/crash/crash.php?sig=SEGV"); the id goes first in the query
    location: str
    expected_status: int
    cause: str | None
    pool: str | None
    upstream: str | None  # the fastcgi_pass target as nginx names it ("unix:/…sock", "127.0.0.1:9001", a group)
    server: str  # "lab" (custom log_format) or "combined"
    scenario: str
    method: str = "GET"
    body: bytes | None = None
    client_timeout: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)  # sent as latin-1 bytes (http.client): "caf\xe9" is 0xE9
    # filled when sent
    observed_status: int | None = None
    sent_at: str | None = None
    elapsed_s: float | None = None
    client_error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        base, sep, query = self.path.partition("?")
        return f"{base}?id={self.id}" + (f"&{query}" if sep else "")

    @property
    def socket(self) -> str | None:
        if self.upstream and self.upstream.startswith("unix:"):
            return self.upstream[len("unix:") :]
        return None


def send(req: Request, port: int, host_header: str) -> Request:
    """Send ``req`` to 127.0.0.1:port; record the status the client saw (None when it gave up)."""
    req.sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=req.client_timeout)
    try:
        headers = {"Host": host_header, "User-Agent": USER_AGENT, "Connection": "close", **req.headers}
        if req.body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(req.method, req.uri, body=req.body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        req.observed_status = resp.status
    except TimeoutError as exc:
        req.client_error = f"client timeout after {req.client_timeout}s ({exc.__class__.__name__})"
    except OSError as exc:
        req.client_error = f"{exc.__class__.__name__}: {exc}"
    except http.client.HTTPException as exc:
        req.client_error = f"{exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
        req.elapsed_s = round(time.monotonic() - t0, 3)
    return req


def send_concurrently(items: list[tuple[float, Request]], port_of: dict[str, int], host_of: dict[str, str]) -> None:
    """Start each request ``delay`` seconds after the batch starts, in its own thread; wait for all."""
    start = time.monotonic()

    def worker(delay: float, req: Request) -> None:
        wait = start + delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        send(req, port_of[req.server], host_of[req.server])

    threads = [threading.Thread(target=worker, args=(d, r), daemon=True) for d, r in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
