"""A tiny HTTP server for what the roles download, bound on the test bridge (reachable only from the lab)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _RecordingHandler(SimpleHTTPRequestHandler):
    requests: list[str]

    def _record(self) -> None:
        # get_url re-checks with If-Modified-Since (and HEAD in check mode): only a plain GET downloads.
        conditional = self.command != "GET" or bool(self.headers.get("If-Modified-Since"))
        self.requests.append(("check " if conditional else "") + self.path)

    def do_GET(self) -> None:
        self._record()
        super().do_GET()

    def do_HEAD(self) -> None:
        self._record()
        super().do_HEAD()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@contextmanager
def serve_directory(address: str, directory: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``directory`` on ``address``; yields the base URL and the list of requests (``check`` prefix
    for conditional ones)."""
    requests: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requests": requests})
    server = ThreadingHTTPServer((address, 0), partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
