"""Credentials that last: the daemon keeps its own OIDC access token fresh.

Called by ``deployer.daemon.config`` (the ``token:`` section of the daemon's ``--config`` file), by
``deployer.daemon.runner`` (the IM client and the refresher thread of ``serve``), by ``deployer daemon
explain`` (the token's state) and by ``deployer.lifecycle.daemon_install`` (the auth file it ships).

The auth file on the front end holds every line of the cluster's IM credentials, but the fields that carry
an OIDC access token (``ACCESS_TOKEN_FIELDS``) hold a placeholder: before each IM request the daemon puts
its current token there. The token comes from one of three sources, named in the config:

- ``refresh_token``: the OAuth2 refresh-token grant at the issuer's token endpoint, with a refresh token
  (offline access) kept in a 0600 file. A rotated refresh token is written back (atomically, under a lock,
  so ``daemon explain`` and the daemon may share the file);
- ``oidc_agent``: ``oidc-token ACCOUNT`` of an oidc-agent running on the front end;
- ``token_file``: a file that something else rotates; it is re-read at every use.

Refreshes happen ahead of expiry (``TokenProvider``), failures back off (1 s doubling up to a minute), an
expired token is never sent, and a 401 from the IM triggers one refresh and one retry (``IMClient``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from deployer.adapters.clouds.tokens import (
    DEFAULT_REFRESH_MARGIN,
    RefreshSettings,
    TokenProvider,
    TokenSpec,
    TokenStatus,
    oidc_agent_token,
    read_token_file,
    refresh_access_token,
)
from deployer.adapters.im.auth import AuthEntry, load_auth_file
from deployer.adapters.im.client import IM_AUTH_TYPE
from deployer.adapters.state.secrets import write_private
from deployer.daemon.metrics import DaemonMetrics
from deployer.daemon.timing import Backoff
from deployer.errors import UserError

log = logging.getLogger(__name__)

TOKEN_SOURCES = ("refresh_token", "oidc_agent", "token_file")
# What the shipped auth file holds where the daemon puts its current access token.
ACCESS_TOKEN_PLACEHOLDER = "set-by-the-daemon"  # noqa: S105 - a marker, not a secret
# An OpenStack line whose password is the access token.
OIDC_PASSWORD_AUTH = "3.x_oidc_access_token"  # noqa: S105 - an auth_version value
# Failed refreshes are retried after 1, 2, 4 ... seconds, never more than a minute apart.
RETRY_BASE, RETRY_MAX = 1.0, 60.0
# The refresher thread looks at the token at least this often (it sleeps until the next refresh is due).
REFRESHER_PERIOD = 5.0


def access_token_fields(entry: AuthEntry) -> tuple[str, ...]:
    """The fields of an auth line that hold an OIDC access token: the IM's and EGI's ``token``, and the
    ``password`` of an OpenStack line authenticating with an OIDC access token."""
    if entry.type in (IM_AUTH_TYPE, "EGI") and "token" in entry.fields:
        return ("token",)
    if entry.type == "OpenStack" and entry.fields.get("auth_version") == OIDC_PASSWORD_AUTH:
        return ("password",)
    return ()


def with_access_token(entries: Sequence[AuthEntry], token: str) -> list[AuthEntry]:
    """``entries`` with every access-token field set to ``token``."""
    return [
        replace(entry, fields={**entry.fields, **dict.fromkeys(access_token_fields(entry), token)})
        for entry in entries
    ]


@dataclass(frozen=True)
class TokenSource:
    """The ``token:`` section of the daemon's config file: where its access token comes from. Paths are on
    the host that runs the daemon; no value here is a secret."""

    source: str
    refresh_token_file: Path | None = None
    issuer: str | None = None
    token_endpoint: str | None = None
    client_id: str | None = None
    client_secret_file: Path | None = None
    scope: str | None = None
    oidc_agent_account: str | None = None
    token_file: Path | None = None

    def __post_init__(self) -> None:
        where = "token"
        if self.source not in TOKEN_SOURCES:
            raise UserError(f"{where}.source must be one of {', '.join(TOKEN_SOURCES)}, not {self.source!r}")
        needed = {
            "refresh_token": ("refresh_token_file", "client_id"),
            "oidc_agent": ("oidc_agent_account",),
            "token_file": ("token_file",),
        }[self.source]
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise UserError(f"{where}.source {self.source} needs {where}.{missing[0]}")
        if self.source == "refresh_token" and not (self.issuer or self.token_endpoint):
            raise UserError(f"{where}.source refresh_token needs {where}.issuer (or {where}.token_endpoint)")

    @classmethod
    def from_mapping(cls, data: object, where: str) -> TokenSource:
        """Read the section; errors name ``where`` (the config file) and the field."""
        if not isinstance(data, Mapping):
            raise UserError(f"{where}: 'token' must be a mapping with 'source' and its settings")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise UserError(f"{where}: token.{unknown[0]} is unknown (known: {', '.join(sorted(known))})")
        paths = {"refresh_token_file", "client_secret_file", "token_file"}
        values: dict[str, Any] = {
            key: (Path(str(value)) if key in paths else str(value))
            for key, value in data.items()
            if value not in (None, "")
        }
        try:
            return cls(**{"source": "", **values})
        except UserError as err:
            raise UserError(f"{where}: {err}") from None

    def as_mapping(self) -> dict[str, str]:
        """The section as the config file holds it (empty settings left out)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)}

    def spec(self) -> TokenSpec:
        """The ``TokenSpec`` for messages (``describe``) and refresh decisions; never holds a secret."""
        if self.source == "oidc_agent":
            return TokenSpec(oidc_agent_account=self.oidc_agent_account)
        if self.source == "token_file":
            return TokenSpec(token_file=self.token_file)
        # The refresh token is read from its file at each refresh (it may be rotated meanwhile).
        settings = RefreshSettings(
            client_id=self.client_id or "",
            refresh_token="",
            issuer=self.issuer,
            token_endpoint=self.token_endpoint,
            scope=self.scope,
        )
        return TokenSpec(refresh=settings)

    def fetch(self, min_valid: float) -> str:
        """One access token from this source (registered for redaction by the provider)."""
        if self.source == "oidc_agent":
            return oidc_agent_token(self.oidc_agent_account or "", min_valid)
        if self.source == "token_file":
            return read_token_file(self.token_file or Path())
        return self._refresh_grant()

    def _refresh_grant(self) -> str:
        path = self.refresh_token_file or Path()
        with _file_lock(path):
            settings = replace(
                self.spec().refresh or RefreshSettings(client_id="", refresh_token=""),
                refresh_token=read_token_file(path, "refresh token"),
                client_secret=(
                    read_token_file(self.client_secret_file, "client secret")
                    if self.client_secret_file
                    else None
                ),
            )
            grant = refresh_access_token(settings)
            if grant.refresh_token is not None:
                write_private(path, grant.refresh_token + "\n")
                log.info("the issuer rotated the refresh token: saved the new one in %s", path)
        return grant.access_token


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize refresh-token use between processes (a rotated token works once)."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DaemonCredentials:
    """The auth file's lines with a fresh access token in them, for ``IMClient(credentials=...)``."""

    def __init__(
        self,
        auth_file: Path,
        source: TokenSource,
        *,
        clock: Callable[[], float] = time.time,
        retry: Backoff | None = None,
    ) -> None:
        self.auth_file = auth_file
        self.source = source
        self._clock = clock
        spec = source.spec()
        self.provider = TokenProvider(
            spec,
            # oidc-agent is asked for a token that outlives our refresh margin, so it renews in time
            fetch=lambda: source.fetch(min_valid=DEFAULT_REFRESH_MARGIN),
            clock=clock,
            retry=retry or Backoff(base=RETRY_BASE, maximum=RETRY_MAX),
        )
        if not any(access_token_fields(entry) for entry in self._lines()):
            raise UserError(
                f"{auth_file}: no line takes an access token (an InfrastructureManager or EGI line with "
                "'token', or an OpenStack line with auth_version 3.x_oidc_access_token); the token: "
                "section of the daemon config has nothing to refresh"
            )

    def _lines(self) -> list[AuthEntry]:
        return load_auth_file(self.auth_file)  # re-read: the file may be replaced by a new install

    def entries(self) -> list[AuthEntry]:
        return with_access_token(self._lines(), self.provider.current())

    def renewed(self, rejected: Sequence[AuthEntry]) -> list[AuthEntry] | None:
        sent = {e.fields[name] for e in rejected for name in access_token_fields(e)}
        if len(sent) != 1:
            return None
        token = self.provider.renew(sent.pop())
        return None if token is None else with_access_token(self._lines(), token)

    def status(self) -> TokenStatus:
        return self.provider.status()

    def publish(self, metrics: DaemonMetrics) -> None:
        """Copy the token's state into the daemon's metrics."""
        status = self.status()
        left = status.seconds_left(self._clock())
        if left is not None:
            metrics.set_gauge("deployer_token_expiry_seconds", left)
        metrics.set_gauge("deployer_token_refreshes_total", status.refreshes)
        metrics.set_gauge("deployer_token_refresh_failures_total", status.refresh_failures)

    @contextmanager
    def refreshing(self, metrics: DaemonMetrics) -> Iterator[None]:
        """A thread that refreshes the token ahead of expiry (even while no IM call is needed) and keeps
        the metrics current, for as long as the block runs."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                self.provider.maintain()
                self.publish(metrics)
                stop.wait(max(0.2, self.provider.next_check_in(REFRESHER_PERIOD)))

        thread = threading.Thread(target=run, name="token-refresher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=REFRESHER_PERIOD + 1)


def describe_status(status: TokenStatus, now: float) -> list[str]:
    """The token's state in words, for ``daemon explain`` (never the token)."""
    lines = [f"access token from {status.source}"]
    left = status.seconds_left(now)
    if left is None:
        lines.append("no token obtained yet" if status.refreshes == 0 else "the token carries no expiry")
    elif left > 0:
        lines.append(f"expires in {int(left)} s ({_utc(status.expires_at)})")
    else:
        lines.append(f"EXPIRED {int(-left)} s ago ({_utc(status.expires_at)}): no IM call is made")
    if status.last_refresh_at is not None:
        lines.append(f"last refreshed {_utc(status.last_refresh_at)}")
    if status.last_error:
        lines.append(f"last refresh failed ({status.consecutive_failures} in a row): {status.last_error}")
    if status.next_attempt_at is not None:
        lines.append(f"next attempt in {max(0, int(status.next_attempt_at - now))} s")
    return lines


def _utc(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))
