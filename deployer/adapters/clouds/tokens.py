"""OIDC access tokens: where they come from, when they expire, and how they are refreshed.

Called by the cloud profiles (``profiles.py``) when an auth entry needs a token, by
``deployer.lifecycle.credentials`` for ``--token``, and by the elasticity daemon, which keeps one
``TokenProvider`` and asks it for ``current()`` before every IM call.

Sources, in the order ``TokenSpec.from_options`` tries them: ``--token``, ``EGI_ACCESS_TOKEN``,
``OIDC_ACCESS_TOKEN``, an oidc-agent account (``oidc-token ACCOUNT``; ``OIDC_AGENT_ACCOUNT``), a token
file. A refresh token plus the issuer's token endpoint is the long-running alternative to oidc-agent.

Every token obtained here is registered with ``deployer.logs.register_secret`` at once, so a token
that reaches a log line by any path is masked. Tokens are never written anywhere by this module.
The expiry is read from the JWT payload without verifying the signature: it only decides when to
warn and when to refresh; the IM and the clouds verify the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import AuthError, RemoteError, UserError
from deployer.logs import register_secret

log = logging.getLogger("deployer.clouds.tokens")

# Refresh this long before expiry so a token never runs out in the middle of an IM call.
DEFAULT_REFRESH_MARGIN = 300.0
# Warn the user this long before expiry (EGI Check-in access tokens live about an hour).
DEFAULT_WARN_WITHIN = 600.0
# oidc-token and token endpoints answer in well under a second; a hung agent must not hang us.
SUBPROCESS_TIMEOUT = 20.0
HTTP_TIMEOUT = 15.0

ENV_TOKEN_VARS = ("EGI_ACCESS_TOKEN", "OIDC_ACCESS_TOKEN")


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded WITHOUT signature verification; ``{}`` for opaque tokens."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim as a POSIX timestamp, or None when the token carries none."""
    exp = jwt_claims(token).get("exp")
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def expiry_warning(token: str, now: float, warn_within: float = DEFAULT_WARN_WITHIN) -> str | None:
    """A one-line warning when the token has expired or expires within ``warn_within`` seconds."""
    exp = token_expiry(token)
    if exp is None:
        return None
    left = exp - now
    if left <= 0:
        return f"the access token expired {_duration(-left)} ago; get a new one (see docs/clouds.md)"
    if left <= warn_within:
        return (
            f"the access token expires in {_duration(left)}; "
            "long operations need oidc-agent or a refresh token"
        )
    return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


@dataclass(frozen=True)
class RefreshSettings:
    """What the OAuth2 refresh-token grant needs. The refresh token itself is named by env var or file."""

    client_id: str
    refresh_token: str
    issuer: str | None = None  # discovery via /.well-known/openid-configuration
    token_endpoint: str | None = None  # overrides discovery
    client_secret: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class TokenSpec:
    """Where to get an access token; no token value unless the user passed one literally."""

    literal: str | None = None
    literal_source: str = "--token"
    oidc_agent_account: str | None = None
    token_file: Path | None = None
    refresh: RefreshSettings | None = None

    @classmethod
    def from_options(
        cls,
        *,
        token: str | None = None,
        env: Mapping[str, str],
        oidc_agent_account: str | None = None,
        token_file: str | Path | None = None,
        refresh: RefreshSettings | None = None,
    ) -> TokenSpec:
        """Pick the token source: an explicit one first, then the environment conventions."""
        if token:
            return cls(literal=token)
        if oidc_agent_account:
            return cls(oidc_agent_account=oidc_agent_account)
        if token_file:
            return cls(token_file=Path(token_file).expanduser())
        if refresh is not None:
            return cls(refresh=refresh)
        for var in ENV_TOKEN_VARS:
            if env.get(var):
                return cls(literal=env[var], literal_source=var)
        if env.get("OIDC_AGENT_ACCOUNT"):
            return cls(oidc_agent_account=env["OIDC_AGENT_ACCOUNT"])
        raise UserError(
            "no access token: pass --token, set EGI_ACCESS_TOKEN or OIDC_ACCESS_TOKEN, "
            "or name an oidc-agent account (OIDC_AGENT_ACCOUNT)"
        )

    def describe(self) -> str:
        """Where the token comes from, for messages (never the token itself)."""
        if self.literal is not None:
            return self.literal_source
        if self.oidc_agent_account:
            return f"oidc-agent account {self.oidc_agent_account}"
        if self.token_file:
            return f"token file {self.token_file}"
        return "refresh token"

    @property
    def refreshable(self) -> bool:
        return self.literal is None


def oidc_agent_token(account: str, min_valid: float = DEFAULT_REFRESH_MARGIN) -> str:
    """Ask oidc-agent for a token valid at least ``min_valid`` seconds (oidc-agent refreshes it itself)."""
    exe = shutil.which("oidc-token")
    if exe is None:
        raise UserError("oidc-token is not installed; install oidc-agent or pass the token another way")
    try:
        done = subprocess.run(
            [exe, f"--time={int(min_valid)}", account],
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise AuthError(f"oidc-token {account} did not answer in {SUBPROCESS_TIMEOUT:.0f} s") from err
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        reason = done.stderr.strip().splitlines()[-1:] or ["no token printed"]
        raise AuthError(f"oidc-token {account} failed: {reason[0]}")
    return token


def read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UserError(f"cannot read token file {path}: {err.strerror}") from err
    if not token:
        raise UserError(f"token file {path} is empty")
    return token


def token_endpoint(settings: RefreshSettings, session: Any) -> str:
    """The issuer's token endpoint: given, or found by OpenID Connect discovery."""
    if settings.token_endpoint:
        return settings.token_endpoint
    if not settings.issuer:
        raise UserError("refreshing a token needs the issuer URL or its token endpoint")
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        reply = session.get(url, timeout=HTTP_TIMEOUT)
    except OSError as err:
        raise RemoteError(f"cannot reach the token issuer {settings.issuer}: {err}") from err
    if reply.status_code != 200:
        raise RemoteError(
            f"OpenID discovery at {url} answered HTTP {reply.status_code}", status=reply.status_code
        )
    endpoint = reply.json().get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise RemoteError(f"OpenID discovery at {url} names no token_endpoint")
    return endpoint


def refresh_access_token(settings: RefreshSettings, session: Any | None = None) -> str:
    """The OAuth2 refresh-token grant: POST to the issuer's token endpoint, return the new access token."""
    import requests

    session = session or requests.Session()
    endpoint = token_endpoint(settings, session)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": settings.refresh_token,
        "client_id": settings.client_id,
    }
    if settings.scope:
        form["scope"] = settings.scope
    auth = (settings.client_id, settings.client_secret) if settings.client_secret else None
    try:
        reply = session.post(endpoint, data=form, auth=auth, timeout=HTTP_TIMEOUT)
    except requests.RequestException as err:
        raise RemoteError(f"cannot reach the token endpoint {endpoint}: {type(err).__name__}") from err
    if reply.status_code in (400, 401, 403):
        # OAuth2 error bodies carry "error" and "error_description", never the token.
        body = _json_or_empty(reply)
        reason = body.get("error_description") or body.get("error") or f"HTTP {reply.status_code}"
        raise AuthError(f"the token endpoint refused the refresh token: {reason}", status=reply.status_code)
    if reply.status_code != 200:
        raise RemoteError(f"the token endpoint answered HTTP {reply.status_code}", status=reply.status_code)
    token = _json_or_empty(reply).get("access_token")
    if not isinstance(token, str) or not token:
        raise RemoteError("the token endpoint answered without an access_token")
    return token


def _json_or_empty(reply: Any) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def fetch_token(spec: TokenSpec, min_valid: float = DEFAULT_REFRESH_MARGIN) -> str:
    """One fresh token from ``spec``'s source, registered for redaction before anyone sees it."""
    if spec.literal is not None:
        token = spec.literal
    elif spec.oidc_agent_account:
        token = oidc_agent_token(spec.oidc_agent_account, min_valid)
    elif spec.token_file is not None:
        token = read_token_file(spec.token_file)
    elif spec.refresh is not None:
        register_secret(spec.refresh.refresh_token)
        register_secret(spec.refresh.client_secret)
        token = refresh_access_token(spec.refresh)
    else:
        raise UserError("no token source configured")
    register_secret(token)
    return token


class TokenProvider:
    """Hands out a valid access token, refreshing it when it comes within ``refresh_margin`` of expiry.

    Thread-safe: the daemon's loop and a CLI command may share one. ``fetch`` is injectable so that
    the daemon and the tests can use any source; by default it is ``fetch_token(spec)``.
    """

    def __init__(
        self,
        spec: TokenSpec,
        *,
        fetch: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        warn_within: float = DEFAULT_WARN_WITHIN,
    ) -> None:
        self.spec = spec
        self._fetch = fetch or (lambda: fetch_token(spec, refresh_margin))
        self._clock = clock
        self._margin = refresh_margin
        self._warn_within = warn_within
        self._lock = threading.Lock()
        self._token: str | None = None
        self._warned_for: str | None = None

    def current(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or (self.spec.refreshable and self._needs_refresh(self._token, now)):
                token = self._fetch()
                register_secret(token)
                if token != self._token:
                    log.info("access token obtained from %s", self.spec.describe())
                self._token = token
            self._maybe_warn(self._token, now)
            return self._token

    def _needs_refresh(self, token: str, now: float) -> bool:
        exp = token_expiry(token)
        return exp is not None and exp - now <= self._margin

    def _maybe_warn(self, token: str, now: float) -> None:
        # One warning per token: the daemon calls current() every few seconds.
        message = expiry_warning(token, now, self._warn_within)
        if message and self._warned_for != token:
            self._warned_for = token
            log.warning("%s (token from %s)", message, self.spec.describe())
