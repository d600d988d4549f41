"""A loopback IM front that accepts one OIDC access token: it records every Authorization header and
swaps the ``InfrastructureManager`` line carrying that token for a fixed IM user, then forwards to the
real local IM (which trusts no issuer itself). Built on the daemon tests' recording proxy.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from deployer.adapters.im.auth import AuthEntry, auth_header, parse_auth_text
from deployer.adapters.im.client import IM_AUTH_TYPE
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
