"""A loopback HTTP proxy that injects faults between deployer and the real IM.

Each ``Fault`` rule matches requests (method, path regex on path+query) and, for ``times`` matching
requests after ``skip`` clean ones, does one of:

- ``status``: answer ``status`` with the IM's JSON error shape; the IM never sees the request;
- ``html``: answer ``status`` with a gateway's HTML error page; the IM never sees the request;
- ``latency``: forward, then wait ``seconds`` before answering;
- ``reset_before``: drop the connection (TCP reset) without forwarding: lost on the way;
- ``reset_after``: forward, then drop the connection: it took effect, the answer is lost;
- ``truncate``: forward, then send the headers and only half of the body;
- ``hold``: wait ``seconds`` before forwarding, even if the client has given up meanwhile (a request
  queued in a slow gateway that still lands);
- ``stall``: never forward and never answer; the connection stays open for ``seconds``;
- ``not_json``: forward, then answer 200 with a body that is not JSON;
- ``bad_shape``: forward, then answer 200 with JSON of an unexpected shape.

Every request is logged with what was done to it, so tests can assert on what reached the IM. Every
wait is bounded, and ``stop()`` ends the server; threads are daemons.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = (
    "status",
    "html",
    "latency",
    "reset_before",
    "reset_after",
    "truncate",
    "hold",
    "stall",
    "not_json",
    "bad_shape",
)
# Kinds after which the IM has acted on the request although the client cannot know it.
FORWARDED_KINDS = frozenset({"latency", "reset_after", "truncate", "hold", "not_json", "bad_shape"})
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}
_GATEWAY_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} Bad Gateway</title></head>"
    "<body><h1>{status}</h1><p>upstream timed out</p><hr>nginx</body></html>"
)


@dataclass
class Fault:
    kind: str
    method: str | None = None
    path: str | None = None  # regex searched in path+query
    times: int = 1  # matching requests to fault; -1 for all
    skip: int = 0  # matching requests to let through first
    status: int = 502
    seconds: float = 0.0
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return not self.path or re.search(self.path, path) is not None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: str | None
    forwarded: bool
    status: int | None
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    def __init__(self, upstream_url: str) -> None:
        target = urlsplit(upstream_url)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.faults: list[Fault] = []
        self.log: list[Seen] = []
        self._arrived: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self.log
                if (method is None or s.method == method) and (path is None or re.search(path, s.path))
            ]

    def wait_for(self, method: str, path: str, *, count: int = 1, timeout: float = 30.0) -> None:
        """Block until ``count`` matching requests have ARRIVED (whatever is done to them)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len([s for s in self._arrived if s[0] == method and re.search(path, s[1])]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} {path} reached the proxy within {timeout}s")
                self._changed.wait(left)

    def _pick(self, method: str, path: str) -> Fault | None:
        with self._changed:
            self._arrived.append((method, path))
            self._changed.notify_all()
            for fault in self.faults:
                if not fault.matches(method, path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip or (fault.times >= 0 and fault.fired >= fault.times):
                    continue
                fault.fired += 1
                return fault
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.log.append(seen)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(*self._upstream, timeout=120)
        try:
            upstream.request(method, path, body=body, headers=headers)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            upstream.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                return

            def _reply(
                self, status: int, headers: list[tuple[str, str]], body: bytes, *, cut: bool = False
            ) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends a TCP RST, as a crashed gateway does.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                method, path = self.command, self.path
                fault = proxy._pick(method, path)
                kind = fault.kind if fault else None
                if fault and kind in ("status", "html"):
                    if kind == "html":
                        page = _GATEWAY_PAGE.format(status=fault.status).encode()
                        answer = [("Content-Type", "text/html")]
                    else:
                        page = json.dumps({"message": "injected failure", "code": fault.status}).encode()
                        answer = [("Content-Type", "application/json")]
                    proxy._record(Seen(method, path, kind, False, fault.status))
                    self._reply(fault.status, answer, page)
                    return
                if fault and kind == "reset_before":
                    proxy._record(Seen(method, path, kind, False, None))
                    self._reset()
                    return
                if fault and kind == "stall":
                    proxy._record(Seen(method, path, kind, False, None))
                    time.sleep(fault.seconds)
                    self.close_connection = True
                    return
                if fault and kind == "hold":
                    time.sleep(fault.seconds)
                status, upstream_headers, data = proxy._forward(method, path, headers, body)
                proxy._record(Seen(method, path, kind, True, status))
                if fault and kind == "latency":
                    time.sleep(fault.seconds)
                if fault and kind == "reset_after":
                    self._reset()
                    return
                if fault and kind == "not_json":
                    self._reply(200, [("Content-Type", "application/json")], b"<html>maintenance</html>")
                    return
                if fault and kind == "bad_shape":
                    self._reply(200, [("Content-Type", "application/json")], b'[{"unexpected": true}]')
                    return
                try:
                    self._reply(status, upstream_headers, data, cut=kind == "truncate")
                except OSError:
                    self.close_connection = True  # the client gave up (a held request landed late)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler
