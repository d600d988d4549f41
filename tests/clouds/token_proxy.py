"""Loopback IM fronts that accept OIDC access tokens: they record every Authorization header and swap the
``InfrastructureManager`` line carrying an accepted token for a fixed IM user, then forward to the real
local IM (which trusts no issuer itself). ``TokenIMProxy`` accepts one token; ``ExpiringTokenIMProxy``
accepts the tokens of a loopback issuer while they are valid and refuses the rest with 401. Built on the
daemon tests' recording proxy.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from deployer.adapters.im.auth import AuthEntry, auth_header, parse_auth_text
from deployer.adapters.im.client import IM_AUTH_TYPE
from tests.clouds.oidc_issuer import OIDCIssuer
from tests.daemon.im_proxy import IMProxy


class TokenIMProxy(IMProxy):
    def __init__(self, target_url: str, token: str, user: AuthEntry) -> None:
        self.token = token
        self.user = user
        self.headers_seen: list[list[AuthEntry]] = []
        super().__init__(target_url)

    def exchange(self, header: str) -> str:
        """Record the entries sent; the accepted token becomes the IM user, anything else passes as is."""
        entries = parse_auth_text(header.replace("\\n", "\n"), "Authorization header")
        with self._lock:
            self.headers_seen.append(entries)
        swapped = [
            self.user if e.type == IM_AUTH_TYPE and e.fields.get("token") == self.token else e
            for e in entries
        ]
        return auth_header(swapped)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        forward_handler = super()._handler()

        class Handler(forward_handler):  # type: ignore[misc,valid-type]
            def _swap_then_forward(self) -> None:
                self.headers.replace_header("Authorization", proxy.exchange(self.headers["Authorization"]))
                self._forward()

            do_GET = do_POST = do_PUT = do_DELETE = _swap_then_forward

        return Handler


@dataclass(frozen=True)
class TokenUse:
    """One request that reached the proxy: when, with which access token, and whether it was let through."""

    at: float
    token: str | None
    expires: float | None
    refused: str | None  # why the proxy answered 401 itself; None: forwarded to the IM


class ExpiringTokenIMProxy(TokenIMProxy):
    """A loopback IM front that accepts the access tokens of one issuer while they are valid: a request
    with an expired, unknown or missing token gets 401 (as an IM checking tokens answers) and never
    reaches the IM. ``refuse_next`` refuses that many valid tokens too (a token revoked at the issuer)."""

    def __init__(self, target_url: str, issuer: OIDCIssuer, user: AuthEntry) -> None:
        super().__init__(target_url, token="", user=user)
        self.issuer = issuer
        self.refuse_next = 0
        self.uses: list[TokenUse] = []
        self.judging = threading.Lock()  # judge and swap one request at a time (``token`` is shared)

    def judge(self, header: str) -> str | None:
        """Why this request is refused (None: it may go on); records it."""
        entries = parse_auth_text(header.replace("\\n", "\n"), "Authorization header")
        token = next((e.fields.get("token") for e in entries if e.type == IM_AUTH_TYPE), None)
        expires = self.issuer.expiry(token) if token else None
        now = time.time()
        with self._lock:
            if expires is None:
                reason: str | None = "unknown token"
            elif expires <= now:
                reason = "expired token"
            elif self.refuse_next > 0:
                self.refuse_next -= 1
                reason = "revoked token"
            else:
                reason = None
            self.uses.append(TokenUse(now, token, expires, reason))
        if reason is None:
            self.token = token or ""  # accepted: the parent swaps it for the IM user
        return reason

    def refused(self, reason: str | None = None) -> list[TokenUse]:
        with self._lock:
            return [u for u in self.uses if u.refused and (reason is None or u.refused == reason)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        swapping_handler = super()._handler()

        class Handler(swapping_handler):  # type: ignore[misc,valid-type]
            def _check_then_forward(self) -> None:
                with proxy.judging:
                    reason = proxy.judge(self.headers.get("Authorization") or "")
                    if reason is None:
                        self.headers.replace_header(
                            "Authorization", proxy.exchange(self.headers["Authorization"])
                        )
                if reason is None:
                    self._forward()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                payload = json.dumps({"message": f"Invalid token: {reason}", "code": 401}).encode()
                proxy._record(self.command, self.path.split("?")[0], 401)
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _check_then_forward

        return Handler
