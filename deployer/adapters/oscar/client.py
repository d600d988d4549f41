"""A thin typed client for OSCAR's REST API (the handful of routes deployer uses).

Called by ``deployer.lifecycle.oscar``. One ``requests`` session per cluster, an explicit timeout on every
call, TLS verified unless the caller says otherwise. OSCAR's answers become ``deployer.errors`` types
with a one-line message: 401/403 (credentials), 404, 409, 5xx (transient), a body that is not JSON
where JSON is due (usually a proxy or login page in front of the API). No call is retried: service
writes are not idempotent on OSCAR's side (a POST of an existing name is a 400), and the caller decides.

Routes and shapes: ``/system/services`` (GET list, POST 201, PUT 204), ``/system/services/{name}``
(GET, DELETE 204), ``/system/logs/{svc}`` (jobs), ``/system/logs/{svc}/{job}`` (text),
``/run/{svc}`` and ``/job/{svc}`` (Bearer: the service's token or an OIDC token; 201 and no job name
for ``/job``). Passwords and tokens are registered with the log redactor and never put in a message.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

import requests

from deployer.errors import (
    AuthError,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    TimeoutExpired,
    TransientError,
)
from deployer.logs import redact, register_secret

log = logging.getLogger(__name__)

# (connect, read) seconds. Service writes make OSCAR create Kubernetes objects and MinIO buckets.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
_MESSAGE_CHARS = 200
_MAX_LOG_PAGES = 100  # GET /system/logs pages; bounded so a server that always says "next" cannot spin us


@dataclass(frozen=True)
class Credentials:
    """Basic auth (``user``/``password``: the cluster's OSCAR user) or an OIDC bearer ``token``."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        register_secret(self.password)
        register_secret(self.token)

    def __repr__(self) -> str:  # dataclass repr would print the password
        return f"Credentials(user={self.user!r}, password={'***' if self.password else None}, token=...)"


@dataclass(frozen=True)
class JobInfo:
    name: str
    status: str
    creation_time: str | None = None
    start_time: str | None = None
    finish_time: str | None = None


class OscarClient:
    """One OSCAR endpoint (the API base, e.g. ``https://oscar.example.org/``) with one set of credentials."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        verify: bool | str = True,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._credentials = credentials
        self._verify = verify
        self._timeout = timeout
        if verify is False:
            log.warning(
                "TLS verification is OFF for OSCAR at %s: anyone on the path can read credentials", url
            )
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        if credentials.token:
            self._session.headers["Authorization"] = f"Bearer {credentials.token}"
        elif credentials.user and credentials.password is not None:
            # A header rather than ``session.auth``, which would override the Bearer of /run and /job.
            pair = f"{credentials.user}:{credentials.password}".encode()
            self._session.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> OscarClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        expect: tuple[int, ...] = (200,),
        timeout: tuple[float, float] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        try:
            response = self._session.request(
                method, self.url + path, verify=self._verify, timeout=timeout or self._timeout, **kwargs
            )
        except requests.exceptions.SSLError as err:
            raise RemoteError(
                f"cannot {what}: TLS verification of {self.url} failed ({err.__class__.__name__}); fix the "
                "certificate or pass --insecure if you trust the network"
            ) from None
        except requests.Timeout:
            seconds = (timeout or self._timeout)[1]
            raise TimeoutExpired(
                f"cannot {what}: OSCAR at {self.url} did not answer within {seconds:g}s"
            ) from None
        except requests.ConnectionError as err:
            raise TransientError(
                f"cannot {what}: OSCAR at {self.url} is unreachable ({err.__class__.__name__})"
            ) from None
        if response.status_code not in expect:
            raise self._error(response, what)
        return response

    def _error(self, response: requests.Response, what: str) -> RemoteError:
        status = response.status_code
        detail = _message(response)
        if status == 401:
            return AuthError(
                f"cannot {what}: OSCAR at {self.url} refused the credentials (401); check the user and "
                "password (or token)",
                status=401,
            )
        if status == 403:
            return AuthError(f"cannot {what}: OSCAR denied it (403{detail})", status=403)
        if status == 404:
            return RemoteNotFound(f"cannot {what}: not found on OSCAR (404{detail})", status=404)
        if status == 409:
            return RemoteConflict(f"cannot {what}: conflict (409{detail})", status=409)
        if status >= 500:
            return TransientError(f"cannot {what}: OSCAR server error {status}{detail}", status=status)
        return RemoteError(f"cannot {what}: OSCAR answered {status}{detail}", status=status)

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise RemoteError(
                f"cannot {what}: OSCAR at {self.url} answered {response.status_code} with a non-JSON body "
                f"({kind}, {len(response.content)} bytes); is that URL the OSCAR API and not a proxy or "
                "login page?"
            ) from None

    # ---- services --------------------------------------------------------------------------

    def list_services(self) -> list[dict[str, Any]]:
        what = "list OSCAR services"
        data = self._json(self._send("GET", "/system/services", what=what), what)
        if not isinstance(data, list):
            raise RemoteError(f"cannot {what}: OSCAR answered {type(data).__name__}, expected a list")
        return [dict(item) for item in data if isinstance(item, dict)]

    def get_service(self, name: str) -> dict[str, Any] | None:
        """The service, or None when OSCAR does not have it (404)."""
        what = f"read OSCAR service {name}"
        try:
            response = self._send("GET", f"/system/services/{name}", what=what)
        except RemoteNotFound:
            return None
        data = self._json(response, what)
        if not isinstance(data, dict):
            raise RemoteError(f"cannot {what}: OSCAR answered {type(data).__name__}, expected an object")
        register_secret(data.get("token"))
        return data

    def create_service(self, service: dict[str, Any]) -> None:
        self._send(
            "POST",
            "/system/services",
            what=f"create OSCAR service {service.get('name')}",
            expect=(201,),
            json=service,
        )

    def update_service(self, service: dict[str, Any]) -> str | None:
        """PUT the whole definition (OSCAR keeps the token). Returns OSCAR's warning text on a 200."""
        response = self._send(
            "PUT",
            "/system/services",
            what=f"update OSCAR service {service.get('name')}",
            expect=(200, 204),
            json=service,
        )
        if response.status_code == 200 and response.text.strip():
            return _one_line(response.text)
        return None

    def delete_service(self, name: str) -> None:
        self._send(
            "DELETE", f"/system/services/{name}", what=f"remove OSCAR service {name}", expect=(204, 200)
        )

    # ---- invocation ------------------------------------------------------------------------

    def _bearer(self, service: str, token: str | None) -> dict[str, str]:
        """``/run`` and ``/job`` take only Bearer: an OIDC token, else the service's own token."""
        chosen = token or self._credentials.token
        if chosen is None:
            found = self.get_service(service)
            if found is None:
                raise RemoteNotFound(f"cannot invoke {service}: OSCAR has no such service (404)", status=404)
            chosen = str(found.get("token") or "")
            if not chosen:
                raise RemoteError(f"cannot invoke {service}: OSCAR returned the service without its token")
        register_secret(chosen)
        return {"Authorization": f"Bearer {chosen}"}

    def run(self, service: str, payload: bytes, *, read_timeout: float, token: str | None = None) -> bytes:
        """Synchronous invocation (``POST /run``): the response body (base64 of the output, usually)."""
        headers = self._bearer(service, token)
        try:
            response = self._send(
                "POST",
                f"/run/{service}",
                what=f"run {service}",
                timeout=(self._timeout[0], read_timeout),
                data=payload,
                headers=headers,
            )
        except RemoteNotFound:
            raise RemoteNotFound(
                f"cannot run {service}: OSCAR has no /run route for it (404); synchronous calls need a "
                f"serverless backend (Knative): use `deployer oscar job {service}` instead",
                status=404,
            ) from None
        return response.content

    def job(self, service: str, payload: bytes, *, token: str | None = None) -> None:
        """Asynchronous invocation (``POST /job``): 201 and no body; the job appears in the logs."""
        headers = self._bearer(service, token)
        self._send(
            "POST",
            f"/job/{service}",
            what=f"submit a job to {service}",
            expect=(201,),
            data=payload,
            headers=headers,
        )

    # ---- logs ------------------------------------------------------------------------------

    def list_jobs(self, service: str) -> list[JobInfo]:
        """Every job of a service, following ``next_page`` (bounded)."""
        what = f"list the jobs of {service}"
        jobs: list[JobInfo] = []
        page: str | None = None
        for _ in range(_MAX_LOG_PAGES):
            params = {"page": page} if page else None
            data = self._json(self._send("GET", f"/system/logs/{service}", what=what, params=params), what)
            if not isinstance(data, dict):
                raise RemoteError(f"cannot {what}: OSCAR answered {type(data).__name__}, expected an object")
            for name, info in (data.get("jobs") or {}).items():
                info = info if isinstance(info, dict) else {}
                jobs.append(
                    JobInfo(
                        name=str(name),
                        status=str(info.get("status", "unknown")),
                        creation_time=info.get("creation_time"),
                        start_time=info.get("start_time"),
                        finish_time=info.get("finish_time"),
                    )
                )
            page = data.get("next_page") or None
            if not page:
                break
        return sorted(jobs, key=lambda j: (j.creation_time or "", j.name))

    def job_logs(self, service: str, job: str) -> str:
        response = self._send("GET", f"/system/logs/{service}/{job}", what=f"read the logs of job {job}")
        return redact(response.text)


def _message(response: requests.Response) -> str:
    """OSCAR's own reason as ``: text`` (one line, short, redacted), or nothing for an HTML page."""
    kind = response.headers.get("Content-Type", "")
    if "html" in kind:
        return ""
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = str(data.get("message") or data.get("error") or text)
    text = _one_line(text)
    return f": {text}" if text else ""


def _one_line(text: str) -> str:
    text = " ".join(redact(text).split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."
