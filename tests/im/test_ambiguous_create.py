"""A create whose response is lost: the client must find its infrastructure, never make a second one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.paths import resolve_paths
from tests.im.templates import new_tag, small_tosca

pytestmark = pytest.mark.im


class DroppingProxy:
    """A loopback HTTP proxy to the IM that loses the first ``drops`` creates.

    ``forward_dropped``: the IM still receives a lost create (only its response is lost); otherwise
    the request itself is lost on the way.
    """

    def __init__(self, upstream: str, drops: int = 1, *, forward_dropped: bool = True) -> None:
        self.upstream = upstream
        self.drops = drops
        self.forward_dropped = forward_dropped
        self.creates_forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                is_create = self.command == "POST" and self.path.startswith("/infrastructures?async")
                lose = is_create and proxy.drops > 0
                if lose:
                    proxy.drops -= 1
                if lose and not proxy.forward_dropped:
                    self.close_connection = True  # lost on the way: the IM never sees it
                    return
                upstream = requests.request(
                    self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=30
                )
                if is_create:
                    proxy.creates_forwarded += 1
                if lose:
                    self.close_connection = True  # the IM did the work; the client never hears of it
                    return
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_DELETE = do_PUT = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def proxy(local_im) -> Iterator[DroppingProxy]:
    with DroppingProxy(local_im.url) as running:
        yield running


def test_client_recognises_its_infrastructure_by_tag(proxy, im_user, local_im):
    tag = new_tag()
    with IMClient(proxy.url, im_user.entries) as client:
        inf_id = client.create(small_tosca(tag), deployment_tag=tag)
    try:
        assert proxy.creates_forwarded == 1, "not submitted a second time"
        with IMClient(local_im.url, im_user.entries) as direct:
            assert direct.list_ids() == [inf_id]
            assert tag in direct.tosca(inf_id)
    finally:
        with IMClient(local_im.url, im_user.entries) as direct:
            direct.destroy(inf_id)


def test_lost_request_is_submitted_again_once_the_im_confirms_absence(local_im, im_user):
    pauses: list[float] = []
    tag = new_tag()
    with DroppingProxy(local_im.url, forward_dropped=False) as lossy:
        with IMClient(lossy.url, im_user.entries, sleep=pauses.append) as client:
            inf_id = client.create(small_tosca(tag), deployment_tag=tag)
        assert lossy.creates_forwarded == 1
    try:
        assert pauses, "it looked for the infrastructure (with pauses) before submitting again"
        with IMClient(local_im.url, im_user.entries) as direct:
            assert direct.list_ids() == [inf_id]
    finally:
        with IMClient(local_im.url, im_user.entries) as direct:
            direct.destroy(inf_id)


def test_cli_create_through_a_lossy_link_records_exactly_one(cli, proxy, im_user, local_im):
    created = cli.json(
        "create",
        "--cloud",
        "local",
        "--name",
        "lossy",
        "--im-url",
        proxy.url,
        "--auth-file",
        str(im_user.auth_file),
    )
    assert created["state"] == "configured"
    assert proxy.creates_forwarded == 1
    with IMClient(local_im.url, im_user.entries) as direct:
        ids = direct.list_ids()
        assert ids == [created["infrastructure_id"]]
        record = DeploymentStore(resolve_paths().state_db).get("lossy")
        assert record.infrastructure_id == ids[0]
        assert record.deployment_tag in direct.tosca(ids[0])
    cli("destroy", "lossy", "--yes")
