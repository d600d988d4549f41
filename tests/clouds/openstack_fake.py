"""A small loopback OpenStack: Keystone v3 (password, application credential, OIDC federation), Nova
flavors and Glance images, answering with the JSON shapes of the real APIs.

Used by the discovery tests through ``openstack_fake`` (tests/clouds/conftest.py). Every request is
recorded so tests can assert what the client sent (auth method, token header).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ISSUED = "2026-01-01T00:00:00.000000Z"
EXPIRES = "2099-01-01T00:00:00.000000Z"


@dataclass
class FakeCloud:
    """What the fake accepts and serves."""

    username: str = "alice"
    password: str = "s3cr;et 'x\""
    project_name: str = "demo"
    project_id: str = "p-1234"
    app_cred_id: str = "ac-1"
    app_cred_secret: str = "ac-secret-value"
    oidc_token: str = "oidc-token-value"
    flavors: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    issued_tokens: set[str] = field(default_factory=set)


def nova_flavor(
    fid: str, name: str, vcpus: int, ram: int, disk: int, extra_specs: dict[str, str] | None = None
):
    return {
        "id": fid,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "swap": 0,
        "rxtx_factor": 1.0,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": True,
        "description": None,
        "extra_specs": extra_specs or {},
        "links": [],
    }


def glance_image(iid: str, name: str, status: str = "active") -> dict[str, Any]:
    return {
        "id": iid,
        "name": name,
        "status": status,
        "visibility": "public",
        "container_format": "bare",
        "disk_format": "qcow2",
        "size": 123456,
        "virtual_size": None,
        "min_disk": 0,
        "min_ram": 0,
        "protected": False,
        "checksum": "d41d8cd98f00b204e9800998ecf8427e",
        "owner": "p-1234",
        "os_hidden": False,
        "tags": [],
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "self": f"/v2/images/{iid}",
        "file": f"/v2/images/{iid}/file",
        "schema": "/v2/schemas/image",
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        return

    # --- plumbing ---
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        self.server.cloud.requests.append((self.command, self.path, dict(self.headers)))

    def _authorized(self) -> bool:
        return self.headers.get("X-Auth-Token") in self.server.cloud.issued_tokens

    # --- routes ---
    def do_GET(self) -> None:
        self._record()
        base = self.server.base
        path = self.path.split("?")[0].rstrip("/")
        if path == "/identity/v3":
            self._send(200, {"version": _identity_version(base)})
        elif path == "/identity":
            self._send(300, {"versions": {"values": [_identity_version(base)]}})
        elif path in ("/compute", "/compute/v2.1"):
            self._send(
                200,
                {"version": _compute_version(base)}
                if path.endswith("2.1")
                else {"versions": [_compute_version(base)]},
            )
        elif path in ("/image", "/image/v2"):
            self._send(200, {"versions": [_image_version(base)]})
        elif path == "/compute/v2.1/flavors/detail":
            if not self._authorized():
                self._send(401, {"error": {"code": 401, "message": "unauthorized"}})
                return
            self._send(200, {"flavors": self.server.cloud.flavors})
        elif path == "/image/v2/images":
            if not self._authorized():
                self._send(401, {"error": {"code": 401, "message": "unauthorized"}})
                return
            self._send(
                200,
                {"images": self.server.cloud.images, "first": "/v2/images", "schema": "/v2/schemas/images"},
            )
        else:
            self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})

    def do_POST(self) -> None:
        self._record()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        cloud = self.server.cloud
        path = self.path.split("?")[0].rstrip("/")
        if path == "/identity/v3/auth/tokens":
            identity = body.get("auth", {}).get("identity", {})
            methods = identity.get("methods", [])
            ok = False
            if "password" in methods:
                user = identity["password"]["user"]
                ok = user.get("name") == cloud.username and user.get("password") == cloud.password
            elif "application_credential" in methods:
                cred = identity["application_credential"]
                ok = cred.get("id") == cloud.app_cred_id and cred.get("secret") == cloud.app_cred_secret
            elif "token" in methods:
                ok = identity["token"].get("id") in cloud.issued_tokens
            if not ok:
                self._send(
                    401,
                    {
                        "error": {
                            "code": 401,
                            "message": "The request you have made requires authentication.",
                            "title": "Unauthorized",
                        }
                    },
                )
                return
            self._issue(methods, scoped=True)
        elif path == "/identity/v3/OS-FEDERATION/identity_providers/egi.eu/protocols/openid/auth":
            if self.headers.get("Authorization") != f"Bearer {cloud.oidc_token}":
                self._send(401, {"error": {"code": 401, "message": "bad token", "title": "Unauthorized"}})
                return
            self._issue(["mapped"], scoped=False)
        else:
            self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})

    def _issue(self, methods: list[str], *, scoped: bool) -> None:
        cloud = self.server.cloud
        token_id = uuid.uuid4().hex
        cloud.issued_tokens.add(token_id)
        token: dict[str, Any] = {
            "methods": methods,
            "expires_at": EXPIRES,
            "issued_at": ISSUED,
            "audit_ids": [uuid.uuid4().hex[:22]],
            "user": {
                "id": "u-1",
                "name": cloud.username,
                "domain": {"id": "default", "name": "Default"},
                "password_expires_at": None,
            },
        }
        if scoped:
            token["project"] = {
                "id": cloud.project_id,
                "name": cloud.project_name,
                "domain": {"id": "default", "name": "Default"},
            }
            token["roles"] = [{"id": "r-1", "name": "member"}]
            token["catalog"] = _catalog(self.server.base)
        self._send(201, {"token": token}, {"X-Subject-Token": token_id})


def _identity_version(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


def _compute_version(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": "2.79",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}
        ],
    }


def _image_version(base: str) -> dict[str, Any]:
    return {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": f"{base}/image/v2/"}]}


def _catalog(base: str) -> list[dict[str, Any]]:
    def service(kind: str, name: str, url: str) -> dict[str, Any]:
        return {
            "type": kind,
            "name": name,
            "id": uuid.uuid4().hex,
            "endpoints": [
                {
                    "id": uuid.uuid4().hex,
                    "interface": iface,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": url,
                }
                for iface in ("public", "internal")
            ],
        }

    return [
        service("identity", "keystone", f"{base}/identity"),
        service("compute", "nova", f"{base}/compute/v2.1"),
        service("image", "glance", f"{base}/image"),
    ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cloud: FakeCloud) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cloud = cloud
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class RunningFake:
    def __init__(self, cloud: FakeCloud) -> None:
        self.cloud = cloud
        self._server = _Server(cloud)
        self._thread = threading.Thread(target=self._server.serve_forever, name="openstack-fake", daemon=True)

    @property
    def auth_url(self) -> str:
        return f"{self._server.base}/identity/v3"

    def __enter__(self) -> RunningFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
