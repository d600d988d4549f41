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
from typing import Any, Protocol

from deployer.errors import AuthError, DeployerError, RemoteError, UserError
from deployer.logs import register_secret

log = logging.getLogger("deployer.clouds.tokens")

# Refresh this long before expiry so a token never runs out in the middle of an IM call.
DEFAULT_REFRESH_MARGIN = 300.0
# ... or earlier for short-lived tokens: when this fraction of the token's lifetime is left.
REFRESH_FRACTION = 1 / 3
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
        where = self.refresh and (self.refresh.issuer or self.refresh.token_endpoint)
        return f"refresh token at {where}" if where else "refresh token"

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


def read_token_file(path: Path, what: str = "token") -> str:
    """A file holding one token (access or refresh token, client secret), registered for redaction."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UserError(f"cannot read {what} file {path}: {err.strerror}") from err
    if not token:
        raise UserError(f"{what} file {path} is empty; put the {what} in it")
    register_secret(token)
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
    endpoint = _json_or_empty(reply).get("token_endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise RemoteError(f"OpenID discovery at {url} names no token_endpoint")
    return endpoint


@dataclass(frozen=True)
class TokenGrant:
    """What a refresh-token grant returns: the access token and, when the issuer rotates refresh tokens,
    the refresh token to use next time (the old one is then dead)."""

    access_token: str
    refresh_token: str | None = None


def refresh_access_token(settings: RefreshSettings, session: Any | None = None) -> TokenGrant:
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
        raise AuthError(
            f"the token endpoint refused the refresh token: {str(reason)[:200]}", status=reply.status_code
        )
    if reply.status_code != 200:
        raise RemoteError(f"the token endpoint answered HTTP {reply.status_code}", status=reply.status_code)
    body = _json_or_empty(reply)
    token = body.get("access_token")
    if not isinstance(token, str) or not token or any(ch.isspace() for ch in token):
        kind = reply.headers.get("Content-Type", "no content type").split(";")[0][:60]
        raise RemoteError(f"the token endpoint answered HTTP 200 without an access_token ({kind})")
    rotated = body.get("refresh_token")
    rotated = rotated if isinstance(rotated, str) and rotated and rotated != settings.refresh_token else None
    register_secret(token)
    register_secret(rotated)
    return TokenGrant(token, rotated)


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
        token = refresh_access_token(spec.refresh).access_token
    else:
        raise UserError("no token source configured")
    register_secret(token)
    return token


class RetryPolicy(Protocol):
    """How long to wait after consecutive failures (``deployer.daemon.timing.Backoff`` is one)."""

    def failure(self) -> float: ...

    def success(self) -> None: ...


class NoValidToken(AuthError):
    """No unexpired access token is at hand: the caller must not contact the IM (it would refuse it)."""


@dataclass(frozen=True)
class TokenStatus:
    """What ``TokenProvider`` knows about its token, for ``daemon explain`` and metrics; never the token."""

    source: str
    expires_at: float | None  # None: no token yet, or an opaque one
    last_refresh_at: float | None  # when a new token was last obtained
    last_error: str | None  # why the last attempt failed (cleared by a success)
    consecutive_failures: int
    refreshes: int
    refresh_failures: int
    next_attempt_at: float | None  # set while backing off

    def seconds_left(self, now: float) -> float | None:
        return None if self.expires_at is None else self.expires_at - now

    def as_dict(self, now: float) -> dict[str, Any]:
        left = self.seconds_left(now)
        return {
            "source": self.source,
            "expires_at": self.expires_at,
            "seconds_left": None if left is None else round(left, 1),
            "valid": left is None or left > 0,
            "last_refresh_at": self.last_refresh_at,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "refreshes": self.refreshes,
            "refresh_failures": self.refresh_failures,
            "next_attempt_at": self.next_attempt_at,
        }


class TokenProvider:
    """Hands out a valid access token, refreshing it ahead of expiry.

    A token is refreshed when less than a third of its lifetime is left, at most ``refresh_margin``
    seconds before expiry (a 60 s token 20 s before, an hour-long one 5 min before). A token file is
    re-read at every use. A failed refresh keeps the current token while it is valid; with a
    ``retry`` policy the next attempt waits (bounded back-off). An expired token is never handed out:
    ``current()`` raises ``NoValidToken`` saying why. Thread-safe: the daemon's loop, its refresher
    thread and a CLI command may share one. ``fetch`` is injectable (default ``fetch_token(spec)``).
    """

    def __init__(
        self,
        spec: TokenSpec,
        *,
        fetch: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        warn_within: float = DEFAULT_WARN_WITHIN,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.spec = spec
        self._fetch = fetch or (lambda: fetch_token(spec, refresh_margin))
        self._clock = clock
        self._margin = refresh_margin
        self._warn_within = warn_within
        self._retry = retry
        self._lock = threading.Lock()
        self._token: str | None = None
        self._obtained_at = 0.0
        self._warned_for: str | None = None
        self._last_refresh_at: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._refreshes = 0
        self._refresh_failures = 0
        self._retry_at: float | None = None

    def current(self) -> str:
        """A token that has not expired; raises ``NoValidToken`` (or the source's own error when there
        has never been a token) rather than hand out an expired one."""
        with self._lock:
            now = self._clock()
            error: Exception | None = None
            if self._due(now):
                error = self._attempt(now)
            return self._valid_token(now, error)

    def renew(self, rejected: str) -> str | None:
        """The IM refused ``rejected`` (401): refresh once now (unless backing off) and return the new
        token, or None when there is none different from the rejected one."""
        with self._lock:
            now = self._clock()
            if self._token == rejected and self.spec.refreshable and not self._backing_off(now):
                self._attempt(now)
            token = self._token
            if token is None or token == rejected or _expired(token, now):
                return None
            return token

    def maintain(self) -> None:
        """Refresh if due, swallowing errors (they are in ``status()``): the daemon's refresher thread."""
        with self._lock:
            now = self._clock()
            if self._due(now):
                self._attempt(now)

    def status(self) -> TokenStatus:
        with self._lock:
            return TokenStatus(
                source=self.spec.describe(),
                expires_at=token_expiry(self._token) if self._token else None,
                last_refresh_at=self._last_refresh_at,
                last_error=self._last_error,
                consecutive_failures=self._failures,
                refreshes=self._refreshes,
                refresh_failures=self._refresh_failures,
                next_attempt_at=self._retry_at,
            )

    def next_check_in(self, ceiling: float) -> float:
        """Seconds until a refresh may be due (or the back-off ends), at most ``ceiling``."""
        with self._lock:
            now = self._clock()
            if self._retry_at is not None:
                return max(0.0, min(ceiling, self._retry_at - now))
            if self._token is None:
                return 0.0
            exp = token_expiry(self._token)
            if exp is None:
                return ceiling
            return max(0.0, min(ceiling, exp - self._margin_for(self._token) - now))

    # ---- internals (called with the lock held) ------------------------------------------------

    def _due(self, now: float) -> bool:
        if self._backing_off(now):
            return False
        if self._token is None:
            return True
        if not self.spec.refreshable:
            return False
        if self.spec.token_file is not None:
            return True  # a small local file: re-read at every use, so a rotation applies at once
        exp = token_expiry(self._token)
        return exp is not None and exp - now <= self._margin_for(self._token)

    def _backing_off(self, now: float) -> bool:
        return self._retry_at is not None and now < self._retry_at

    def _margin_for(self, token: str) -> float:
        exp = token_expiry(token)
        if exp is None:
            return self._margin
        issued = jwt_claims(token).get("iat")
        start = float(issued) if isinstance(issued, (int, float)) and not isinstance(issued, bool) else None
        lifetime = exp - (start if start is not None else self._obtained_at)
        return min(self._margin, max(lifetime, 0.0) * REFRESH_FRACTION)

    def _attempt(self, now: float) -> DeployerError | None:
        """One fetch; returns the error instead of raising (the caller decides whether it matters)."""
        try:
            token = self._fetch()
            register_secret(token)
            if _expired(token, now):
                raise NoValidToken(
                    f"{self.spec.describe()} gave an access token that expired "
                    f"{_duration(now - (token_expiry(token) or now))} ago"
                )
        except (DeployerError, OSError) as raw:
            err = raw if isinstance(raw, DeployerError) else AuthError(f"{self.spec.describe()}: {raw}")
            self._failed(now, err)
            return err
        self._retry_at = None
        self._failures = 0
        self._last_error = None
        if self._retry is not None:
            self._retry.success()
        if token == self._token:
            # Not renewed although due (a token file nobody rotated yet, an agent's cached token): look
            # again soon, not at every call.
            exp = token_expiry(token)
            if exp is not None and exp - now <= self._margin_for(token):
                self._retry_at = now + max(0.5, self._margin_for(token) / 4)
            return None
        log.info("access token obtained from %s", self.spec.describe())
        self._token = token
        self._obtained_at = now
        self._last_refresh_at = now
        self._refreshes += 1
        return None

    def _failed(self, now: float, err: DeployerError) -> None:
        self._failures += 1
        self._refresh_failures += 1
        self._last_error = str(err)
        delay = self._retry.failure() if self._retry is not None else None
        self._retry_at = None if delay is None else now + delay
        kept = "; the current token stays in use" if self._token and not _expired(self._token, now) else ""
        retry = f"; next try in {delay:.0f} s" if delay is not None else ""
        log.warning("cannot refresh the token from %s: %s%s%s", self.spec.describe(), err, kept, retry)

    def _valid_token(self, now: float, error: DeployerError | None) -> str:
        token = self._token
        if token is None:
            if error is not None:
                raise error  # tried just now: the source's own error says best what to fix
            raise NoValidToken(f"no access token from {self.spec.describe()}: {self._why()}")
        # Refreshing starts well before this (the margin), so this only bites when refreshing fails.
        if _expired(token, now + min(IN_FLIGHT_S, self._margin_for(token) / 2)):
            left = (token_expiry(token) or now) - now
            when = f"expires in {_duration(left)}" if left > 0 else f"expired {_duration(-left)} ago"
            raise NoValidToken(
                f"the access token from {self.spec.describe()} {when} and could not be refreshed: "
                f"{self._why()}"
            )
        self._maybe_warn(token, now)
        return token

    def _why(self) -> str:
        reason = self._last_error or "no refresh attempted yet"
        if self._retry_at is not None:
            reason += f" (next try in {_duration(max(0.0, self._retry_at - self._clock()))})"
        return reason

    def _maybe_warn(self, token: str, now: float) -> None:
        # One warning per token: the daemon calls current() every few seconds. A refreshable token
        # near expiry is normal (it is refreshed in time); only a fixed one deserves a warning.
        if self.spec.refreshable:
            return
        message = expiry_warning(token, now, self._warn_within)
        if message and self._warned_for != token:
            self._warned_for = token
            log.warning("%s (token from %s)", message, self.spec.describe())


# A token handed out must still be valid when the request reaches the IM (a loaded machine, a slow link).
IN_FLIGHT_S = 2.0


def _expired(token: str, now: float) -> bool:
    exp = token_expiry(token)
    return exp is not None and exp <= now
