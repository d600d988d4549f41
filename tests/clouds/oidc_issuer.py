"""A loopback OpenID Connect issuer: discovery plus a token endpoint that runs the refresh-token grant and
issues short-lived JWT access tokens (unsigned: only their ``exp`` matters to the clients under test).

Real OAuth2 shapes (RFC 6749 section 5: ``access_token``/``expires_in`` on success, ``error``/
``error_description`` with 400 on a bad grant), optional refresh-token rotation (each grant returns a new
refresh token and kills the old one, as Keycloak can), and faults on demand: ``mode`` ``down`` (the
connection is dropped), ``html`` (a 200 login page), ``500``, ``garbage`` (200 with JSON lacking the token).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.clouds.conftest import make_jwt

REALM = "/realms/test"


class OIDCIssuer:
    def __init__(self, lifetime: float, *, rotate: bool = False, client_id: str = "deployer") -> None:
        self.lifetime = lifetime
        self.rotate = rotate
        self.client_id = client_id
        self.mode = "ok"
        self.refresh_tokens = {f"rt-{secrets.token_urlsafe(16)}"}
        self.issued: dict[str, float] = {}  # access token -> expiry
        self.attempts: list[float] = []  # when each grant request arrived, whatever its fate
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.base + REALM
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)

    @property
    def refresh_token(self) -> str:
        """The one live refresh token (what a user got with offline access)."""
        with self._lock:
            (token,) = self.refresh_tokens
            return token

    def start(self) -> OIDCIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def revoke_all(self) -> None:
        with self._lock:
            self.refresh_tokens.clear()

    def expiry(self, access_token: str) -> float | None:
        """When a token this issuer gave out expires; None for a token it never issued."""
        with self._lock:
            return self.issued.get(access_token)

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        with self._lock:
            if form.get("grant_type") != "refresh_token" or form.get("client_id") != self.client_id:
                return 400, {"error": "invalid_request", "error_description": "bad grant or client"}
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "Token is not active"}
            now = time.time()
            expires = now + self.lifetime
            serial = next(self._serial)
            token = make_jwt({"iss": self.issuer, "sub": "daemon", "iat": now, "exp": expires, "jti": serial})
            self.issued[token] = expires
            body: dict[str, object] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.lifetime,
            }
            if self.rotate:
                self.refresh_tokens = {f"rt-{secrets.token_urlsafe(16)}"}
                body["refresh_token"] = next(iter(self.refresh_tokens))
            return 200, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                return

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != REALM + "/.well-known/openid-configuration":
                    self._send(404, b"{}")
                    return
                document = {"issuer": issuer.issuer, "token_endpoint": issuer.issuer + "/token"}
                self._send(200, json.dumps(document).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                issuer.attempts.append(time.time())
                mode = issuer.mode
                if mode == "down":
                    self.close_connection = True  # no answer at all: the client sees a dropped connection
                    return
                if mode == "html":
                    self._send(200, b"<html><body>Sign in to continue</body></html>", "text/html")
                    return
                if mode == "500":
                    self._send(500, b"Internal Server Error", "text/plain")
                    return
                if mode == "garbage":
                    self._send(200, json.dumps({"token_type": "Bearer", "access_token": 42}).encode())
                    return
                form = {key: values[0] for key, values in parse_qs(body).items()}
                status, answer = issuer.grant(form)
                self._send(status, json.dumps(answer).encode())

        return Handler
