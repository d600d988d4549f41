"""Where `deployer ui` listens and who may use it: loopback by default, a token required elsewhere, and the
token's sign-in guarding every page and action."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import requests

from deployer.adapters.im.local_server import free_port
from deployer.ui.server import is_loopback
from tests.ui.conftest import REPO, start_dashboard, stop_dashboard

TOKEN = "ui-token-" + "s3cr3t-value"


def run_ui(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYER_UI_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "deployer", "ui", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("dashboard.example.org", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.7"])
def test_non_loopback_host_without_a_token_is_refused(deployer_home, host):
    port = free_port()
    result = run_ui("--host", host, "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--host {host}" in lines[0] and "--token" in lines[0]
    assert "Traceback" not in result.stderr
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing was left listening


def test_a_taken_port_is_a_one_line_error(deployer_home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = run_ui("--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "cannot listen there" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_token_guards_every_page_and_action(deployer_home):
    dashboard = start_dashboard(env={"DEPLOYER_UI_TOKEN": TOKEN})
    try:
        url = dashboard.url
        assert requests.get(url + "/", allow_redirects=False, timeout=30).headers["location"] == "/login"
        assert requests.get(url + "/simulator", allow_redirects=False, timeout=30).status_code == 303
        assert (
            requests.post(url + "/deployments/x/destroy", data={"confirm": "x"}, timeout=30).status_code
            == 401
        )
        session = requests.Session()
        login = session.get(url + "/login", timeout=30)
        assert TOKEN not in login.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', login.text)[1]
        for guess in ("guess", "gü€ss"):  # non-ASCII must be a wrong token too, not a server error
            wrong = session.post(url + "/login", data={"csrf": csrf, "token": guess}, timeout=30)
            assert wrong.status_code == 401 and "wrong access token" in wrong.text
        assert session.post(url + "/login", data={"csrf": "ç", "token": TOKEN}, timeout=30).status_code == 403
        assert session.post(url + "/login", data={"token": TOKEN}, timeout=30).status_code == 403  # no CSRF
        signed = session.post(
            url + "/login", data={"csrf": csrf, "token": TOKEN}, allow_redirects=False, timeout=30
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
        page = session.get(url + "/", timeout=30)
        assert page.status_code == 200 and "Deployments" in page.text and TOKEN not in page.text
    finally:
        stop_dashboard(dashboard)
