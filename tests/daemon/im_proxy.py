"""A loopback HTTP proxy in front of the real local IM that records every request and can answer 500.

The daemon tests point the IM power manager at it to count add-resource calls and to make the IM "fail"
on demand (``fail_with = 500``) without touching the IM itself. ``fail_next`` fails only the next few
requests of one kind, ``delay`` holds requests of one kind before forwarding them (a slow IM), and
``hook`` stops the client mid-call.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    status: int


class IMProxy:
    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        self._target = (target.hostname or "127.0.0.1", target.port or 80)
        self.requests: list[ProxiedRequest] = []
        self.fail_with: int | None = None  # answer every request with this status instead of forwarding
        # Called with (method, path, "received") before forwarding and (method, path, "applied") once the IM
        # answered, before the client gets the answer: a test may block or kill the client there. Raising
        # ConnectionAbortedError at "received" drops the request unserved.
        self.hook: Callable[[str, str, str], None] | None = None
        self._fail_next: dict[tuple[str, str], list[int]] = {}  # (method, path) -> statuses still to answer
        self.delay: dict[tuple[str, str], float] = {}  # (method, path) -> seconds to hold each request
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="im-proxy", daemon=True)

    def start(self) -> IMProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def calls(self, method: str, path: str) -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def fail_next(self, method: str, path: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests ``method path`` with ``status`` (then forward again)."""
        with self._lock:
            self._fail_next.setdefault((method, path), []).extend([status] * times)

    def _injected_status(self, method: str, path: str) -> int | None:
        with self._lock:
            pending = self._fail_next.get((method, path))
            if pending:
                return pending.pop(0)
        return self.fail_with

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(ProxiedRequest(method, path, status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?")[0]
                time.sleep(proxy.delay.get((self.command, path), 0.0))
                injected = proxy._injected_status(self.command, path)
                if injected is not None:
                    payload = json.dumps({"message": "injected failure", "code": injected}).encode()
                    proxy._record(self.command, path, injected)
                    self.send_response(injected)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if proxy.hook is not None:
                    try:
                        proxy.hook(self.command, path, "received")
                    except ConnectionAbortedError:  # the hook says: drop it unserved
                        self.close_connection = True
                        return
                upstream = http.client.HTTPConnection(*proxy._target, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                proxy._record(self.command, path, response.status)
                if proxy.hook is not None:
                    proxy.hook(self.command, path, "applied")
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client died (a killed daemon)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *_: object) -> None:
                return

        return Handler
