"""Access tokens: sources, expiry warnings, refresh (oidc-agent and a loopback token endpoint), redaction."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from deployer.adapters.clouds import tokens
from deployer.adapters.clouds.tokens import NoValidToken, RefreshSettings, TokenProvider, TokenSpec
from deployer.daemon.timing import Backoff
from deployer.errors import AuthError, RemoteError, UserError
from deployer.logs import MASK, redact
from tests.clouds.conftest import make_jwt

NOW = 1_800_000_000.0


def test_jwt_expiry_is_decoded_without_verification_and_opaque_tokens_have_none():
    token = make_jwt({"exp": NOW + 3600, "iss": "https://issuer"})
    assert tokens.token_expiry(token) == NOW + 3600
    assert tokens.jwt_claims(token)["iss"] == "https://issuer"
    assert tokens.token_expiry("opaque-token-value") is None
    assert tokens.token_expiry("a.!!!notbase64.c") is None
    assert tokens.token_expiry(make_jwt({"exp": True})) is None


@pytest.mark.parametrize(
    ("left", "expected"),
    [(3600, None), (300, "expires in 5 min 0 s"), (45, "expires in 45 s"), (-120, "expired 2 min 0 s ago")],
)
def test_expiry_warning(left, expected):
    message = tokens.expiry_warning(make_jwt({"exp": NOW + left}), NOW, warn_within=600)
    if expected is None:
        assert message is None
    else:
        assert message is not None and expected in message


def test_token_source_order(tmp_path):
    env = {
        "EGI_ACCESS_TOKEN": "egi-token-1",
        "OIDC_ACCESS_TOKEN": "oidc-token-1",
        "OIDC_AGENT_ACCOUNT": "egi",
    }
    assert TokenSpec.from_options(token="flag-token", env=env).literal == "flag-token"
    assert TokenSpec.from_options(env=env).literal_source == "EGI_ACCESS_TOKEN"
    del env["EGI_ACCESS_TOKEN"]
    assert TokenSpec.from_options(env=env).literal == "oidc-token-1"
    del env["OIDC_ACCESS_TOKEN"]
    assert TokenSpec.from_options(env=env).oidc_agent_account == "egi"
    assert TokenSpec.from_options(env={}, token_file=tmp_path / "t").token_file == tmp_path / "t"
    with pytest.raises(UserError, match="EGI_ACCESS_TOKEN"):
        TokenSpec.from_options(env={})


def test_provider_refreshes_near_expiry_and_warns_once_with_the_token_redacted(caplog):
    clock = [NOW]
    issued: list[str] = []

    def fetch() -> str:
        token = make_jwt({"exp": clock[0] + 900, "n": len(issued)})
        issued.append(token)
        return token

    provider = TokenProvider(
        TokenSpec(refresh=RefreshSettings(client_id="c", refresh_token="r")),
        fetch=fetch,
        clock=lambda: clock[0],
        refresh_margin=300,
        warn_within=600,
    )
    first = provider.current()
    clock[0] += 500  # 400 s left: still outside the refresh margin
    assert provider.current() == first and len(issued) == 1
    clock[0] += 150  # 250 s left: refresh
    second = provider.current()
    assert second != first and len(issued) == 2

    # A literal token cannot be refreshed: it is kept, and the user is warned once.
    literal = make_jwt({"exp": NOW + 120})
    with caplog.at_level(logging.WARNING, logger="deployer.clouds.tokens"):
        static = TokenProvider(TokenSpec(literal=literal), clock=lambda: NOW)
        assert static.current() == literal
        assert static.current() == literal
    warnings = [r for r in caplog.records if "expires in 2 min" in r.getMessage()]
    assert len(warnings) == 1
    assert literal not in redact(f"header: {literal}")  # registered the moment it was fetched
    assert redact(literal) == MASK


def test_token_file_is_reread_on_refresh(tmp_path):
    path = tmp_path / "token"
    path.write_text(make_jwt({"exp": NOW + 60}) + "\n")
    clock = [NOW]
    provider = TokenProvider(TokenSpec(token_file=path), clock=lambda: clock[0], refresh_margin=300)
    first = provider.current()
    fresh = make_jwt({"exp": NOW + 3600})
    path.write_text(fresh)
    assert provider.current() == fresh != first
    path.write_text("")
    with pytest.raises(UserError, match="empty"):
        tokens.read_token_file(path)


@pytest.fixture
def fake_oidc_token(tmp_path, monkeypatch) -> Path:
    """A stand-in for oidc-agent's ``oidc-token`` on PATH: it records its arguments and prints a token."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "oidc-token-args"
    script = bindir / "oidc-token"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {record}\n'
        'if [ "$2" = "broken" ]; then echo "Error: account not loaded" >&2; exit 1; fi\n'
        'echo "agent-token-for-$2"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_oidc_agent_account(fake_oidc_token):
    spec = TokenSpec.from_options(env={"OIDC_AGENT_ACCOUNT": "egi"})
    assert TokenProvider(spec).current() == "agent-token-for-egi"
    assert fake_oidc_token.read_text().split() == ["--time=300", "egi"]
    assert redact("agent-token-for-egi") == MASK
    with pytest.raises(AuthError, match="account not loaded"):
        tokens.oidc_agent_token("broken")


class _TokenEndpoint(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/realms/egi/.well-known/openid-configuration":
            self._json(
                200,
                {
                    "issuer": self.server.base + "/realms/egi",
                    "token_endpoint": self.server.base + "/realms/egi/token",
                },
            )
        else:
            self._json(404, {})

    def do_POST(self) -> None:
        form = {
            k: v[0]
            for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
        }
        self.server.forms.append(form)
        if form.get("refresh_token") != "good-refresh-token":
            self._json(400, {"error": "invalid_grant", "error_description": "Token is not active"})
            return
        self._json(
            200,
            {
                "access_token": make_jwt({"exp": NOW + 3600, "n": len(self.server.forms)}),
                "token_type": "Bearer",
                "expires_in": 3600,
            },
        )


@pytest.fixture
def token_endpoint() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    server.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    server.forms = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_refresh_token_grant_against_a_loopback_issuer(token_endpoint):
    settings = RefreshSettings(
        client_id="deployer",
        refresh_token="good-refresh-token",
        issuer=token_endpoint.base + "/realms/egi",
        scope="openid",
    )
    clock = [NOW]
    provider = TokenProvider(TokenSpec(refresh=settings), clock=lambda: clock[0], refresh_margin=300)
    first = provider.current()
    assert tokens.token_expiry(first) == NOW + 3600
    assert token_endpoint.forms == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "good-refresh-token",
            "client_id": "deployer",
            "scope": "openid",
        }
    ]
    clock[0] += 3400  # 200 s left
    assert provider.current() != first
    assert len(token_endpoint.forms) == 2
    assert redact("good-refresh-token") == MASK

    bad = RefreshSettings(
        client_id="deployer",
        refresh_token="revoked-refresh-token",
        token_endpoint=token_endpoint.base + "/realms/egi/token",
    )
    with pytest.raises(AuthError, match="Token is not active") as err:
        tokens.fetch_token(TokenSpec(refresh=bad))
    assert "revoked-refresh-token" not in str(err.value)


def test_refresh_ahead_scales_with_the_lifetime_and_failed_refreshes_back_off():
    clock = [NOW]
    answer: list[str | Exception] = []  # what the source gives on every call from now on
    calls: list[float] = []

    def fetch() -> str:
        calls.append(clock[0])
        if isinstance(answer[0], Exception):
            raise answer[0]
        return answer[0]

    def jwt(lifetime: float) -> str:
        return make_jwt({"iat": clock[0], "exp": clock[0] + lifetime})

    provider = TokenProvider(
        TokenSpec(refresh=RefreshSettings(client_id="c", refresh_token="r")),
        fetch=fetch,
        clock=lambda: clock[0],
        retry=Backoff(base=1, maximum=16),
    )
    answer.append(jwt(60))
    first = provider.current()
    clock[0] += 39  # 21 s left of 60: a third of the lifetime is 20 s, not due yet
    assert provider.current() == first and len(calls) == 1
    clock[0] += 2  # 19 s left: due; the endpoint fails, the valid token stays in use
    answer[0] = RemoteError("the token endpoint answered HTTP 503")
    assert provider.current() == first
    status = provider.status()
    assert (status.consecutive_failures, status.next_attempt_at) == (1, clock[0] + 1)
    assert status.last_error == "the token endpoint answered HTTP 503"
    for wait in (0.5, 0.6, 2, 4, 8):  # tries 1.1, 3.1, 7.1 and 15.1 s later (back-off 1, 2, 4, 8)
        clock[0] += wait
        answer[0] = RemoteError("down")
        provider.maintain()
    assert len(calls) == 6 and provider.status().consecutive_failures == 5
    clock[0] += 5  # past expiry, backing off (16 s): no call, and no expired token handed out
    with pytest.raises(NoValidToken, match=r"expired .* could not be refreshed: down"):
        provider.current()
    assert len(calls) == 6
    clock[0] += 11
    answer[0] = jwt(3600)
    second = provider.current()
    assert second != first and provider.status().last_error is None
    assert provider.status().refreshes == 2 and provider.status().refresh_failures == 5
    clock[0] += 3600 - 301  # an hour-long token: refreshed at most 5 min (the cap) before expiry
    assert provider.current() == second
    clock[0] += 2
    answer[0] = jwt(3600)
    assert provider.current() != second and len(calls) == 8
