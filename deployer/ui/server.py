"""Serving the dashboard: the bind-address rule, the listening socket, then uvicorn (``deployer ui``)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import replace

from deployer.errors import UserError
from deployer.ui.app import UISettings, create_app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other host name may resolve to a public address


def check_bind(host: str, token: str | None) -> None:
    """Off loopback, anyone who reaches the dashboard could scale and destroy clusters: demand a token."""
    if not is_loopback(host) and not token:
        raise UserError(
            f"--host {host}: serving beyond this machine needs an access token; pass --token "
            "(or set DEPLOYER_UI_TOKEN), or keep the default --host 127.0.0.1"
        )


def _listen(host: str, port: int) -> socket.socket:
    """Bind before announcing, so a taken port is a one-line error and ``--port 0`` reports the real one."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bare, port))
    except OSError as err:
        sock.close()
        raise UserError(
            f"--host {host} --port {port}: cannot listen there ({err.strerror}); pick another --port"
        ) from None
    sock.listen(128)
    return sock


def serve(settings: UISettings, host: str, port: int, *, announce: Callable[[str], None]) -> None:
    check_bind(host, settings.token)
    import uvicorn

    sock = _listen(host, port)
    app = create_app(replace(settings, loopback_host=host if is_loopback(host) else None))
    config = uvicorn.Config(app, log_level="warning", server_header=False, proxy_headers=False)
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    announce(f"dashboard on http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C stops it)")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
