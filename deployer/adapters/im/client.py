"""A typed client for the Infrastructure Manager REST API.

Called by the life-cycle use cases (``deployer.lifecycle``) and the IM power manager. Every call has a
timeout. Only calls that are safe to repeat (GETs, DELETEs, dry runs) are retried, with jittered
exponential backoff. Calls that change something (create, add VMs, reconfigure) are sent once: a failure
after the request may have left is ``TransientError`` (ambiguous), one before it left is ``NotDelivered``,
and deciding what to do next is the life cycle's job (``deployer.lifecycle.deploy``), which knows the
deployment's tag. Every answer is checked: an HTML page from a gateway, a body that is not JSON, a
truncated body or JSON of an unexpected shape becomes one line naming the IM URL and the status, never a
traceback. TLS is verified unless the caller explicitly asks for ``verify=False``.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from deployer.adapters.im.auth import AuthEntry, auth_header
from deployer.errors import (
    AuthError,
    NotDelivered,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    TransientError,
    UserError,
)
from deployer.logs import redact, register_secret

log = logging.getLogger(__name__)

IM_AUTH_TYPE = "InfrastructureManager"
# (connect, read) seconds. Async creates and state reads answer quickly; a synchronous
# removal or reconfigure may take longer on a busy IM. DEPLOYER_IM_TIMEOUT="CONNECT,READ" overrides it.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
TIMEOUT_ENV = "DEPLOYER_IM_TIMEOUT"
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# The tag deployer embeds in every template it renders (metadata ``deployer_id``; RADL: the description).
_TAG_PATTERNS = (
    re.compile(r"^\s*deployer_id:\s*['\"]?([A-Za-z0-9_.-]+)", re.MULTILINE),
    re.compile(r"\[deployer-id ([A-Za-z0-9_.-]+)\]"),
)


def configured_timeout() -> tuple[float, float]:
    """The (connect, read) timeout for IM calls: ``DEPLOYER_IM_TIMEOUT`` or the default."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        connect, read = (float(part) for part in raw.split(","))
    except ValueError:
        raise UserError(
            f"{TIMEOUT_ENV}={raw!r} is not 'CONNECT,READ' in seconds (for example '5,60')"
        ) from None
    if connect <= 0 or read <= 0:
        raise UserError(f"{TIMEOUT_ENV}: both timeouts must be positive seconds (for example '5,60')")
    return connect, read


def tag_in(text: str) -> str | None:
    """The deployment tag a template (TOSCA or RADL) carries, if any."""
    for pattern in _TAG_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None


class Credentials(Protocol):
    """Short-lived credentials (OIDC access tokens) that the client asks for before every request."""

    def entries(self) -> Sequence[AuthEntry]:
        """The auth entries to send now; raises rather than return an expired token."""
        ...

    def renewed(self, rejected: Sequence[AuthEntry]) -> Sequence[AuthEntry] | None:
        """The IM answered 401 to ``rejected``: new entries to retry with once, or None."""
        ...


@dataclass(frozen=True)
class InfraState:
    """``GET /infrastructures/<id>/state``: the overall state and one state per VM id."""

    state: str
    vm_states: dict[str, str] = field(default_factory=dict, hash=False)


def infrastructure_id_from_uri(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


class IMClient:
    """One IM endpoint with one set of credentials."""

    def __init__(
        self,
        url: str,
        entries: Iterable[AuthEntry],
        *,
        verify: bool | str = True,
        timeout: tuple[float, float] | None = None,
        retries: int = 4,
        backoff_base: float = 0.25,
        backoff_cap: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        credentials: Credentials | None = None,
    ) -> None:
        """``credentials``, when given, replaces ``entries`` before every request and renews them once
        after a 401 (the IM refused the request, so repeating it is safe even for a POST)."""
        self.url = url.rstrip("/")
        self._credentials = credentials
        self._session = requests.Session()
        self._session.headers["Accept"] = "application/json"
        self._use(entries)
        if verify is False:
            log.warning(
                "TLS verification is OFF for %s (--insecure): anyone on the path can read credentials", url
            )
        self._verify = verify
        self._timeout = timeout or configured_timeout()
        self._retries = retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._sleep = sleep

    def _use(self, entries: Iterable[AuthEntry]) -> None:
        self.entries = list(entries)
        for entry in self.entries:
            for secret in entry.secret_values():
                register_secret(secret)
        self._session.headers["Authorization"] = auth_header(self.entries)

    @property
    def read_timeout(self) -> float:
        """Seconds after which a call is given up: a request still queued somewhere may land later."""
        return self._timeout[1]

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> IMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport -------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, what: str, template: bool = False, **kwargs: Any
    ) -> requests.Response:
        """One HTTP exchange, with errors mapped. No retry here (but one after a 401 with renewed
        credentials: a refused request had no effect, so this is safe even for a POST). ``template``: the
        body is a TOSCA.

        ``NotDelivered`` when the request surely never left (refused, connect timeout); any other failure
        after it may have left is a plain ``TransientError``: the IM may have acted on it.
        """
        kwargs.setdefault("timeout", self._timeout)
        if self._credentials is not None:
            self._use(self._credentials.entries())
        response = self._exchange(method, path, what=what, **kwargs)
        if response.status_code == 401 and self._credentials is not None:
            renewed = self._credentials.renewed(self.entries)
            if renewed is not None:
                log.info("the IM refused the credentials (401) to %s: renewed them, trying once more", what)
                self._use(renewed)
                response = self._exchange(method, path, what=what, **kwargs)
        if response.status_code >= 400:
            raise self._error(response, what, template=template)
        return response

    def _exchange(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, self.url + path, verify=self._verify, **kwargs)
        except requests.exceptions.SSLError as err:
            raise RemoteError(
                f"TLS verification of {self.url} failed ({err.__class__.__name__}); fix the certificate "
                "or pass --insecure if you trust the network"
            ) from None
        except requests.RequestException as err:
            kind = NotDelivered if _not_sent(err) else TransientError
            raise kind(f"cannot {what}: the IM at {self.url} did not answer ({_reason(err)})") from err

    def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        """A call that is safe to repeat: retried on transient failures with jittered backoff."""
        attempt = 0
        while True:
            try:
                return self._send(method, path, what=what, **kwargs)
            except TransientError as err:
                attempt += 1
                if attempt >= self._retries:
                    raise
                delay = random.uniform(0, min(self._backoff_cap, self._backoff_base * 2**attempt))  # noqa: S311
                log.info("%s; retry %d/%d in %.1fs", err, attempt, self._retries - 1, delay)
                self._sleep(delay)

    def _error(self, response: requests.Response, what: str, *, template: bool) -> RemoteError:
        status = response.status_code
        if _is_html(response):
            # A gateway (proxy, load balancer) answered for the IM: its page says nothing useful.
            title = _html_title(response.text) or response.reason or "no title"
            error_type = TransientError if status in _TRANSIENT_STATUS else RemoteError
            return error_type(
                f"cannot {what}: {self.url} answered {status} with an HTML page ({title!r}), not the IM's "
                "JSON: the IM or a gateway in front of it is failing; try again later",
                status=status,
            )
        message = redact(_im_message(response))
        if status == 400 and template:
            return RemoteError(f"IM refused the template: {message}", status=400)
        if status == 401:
            return AuthError(
                f"cannot {what}: the IM refused the request (401): {self._im_line_hint()}", status=401
            )
        if status == 403:
            return AuthError(
                f"cannot {what}: the IM denied access (403: {message}). The 'type = {IM_AUTH_TYPE}' line's "
                "username/password (or token) is wrong, or the infrastructure belongs to another IM user",
                status=403,
            )
        if status == 404:
            return RemoteNotFound(f"cannot {what}: the IM does not know it (404: {message})", status=404)
        if status == 409:
            return RemoteConflict(f"cannot {what}: wrong state for that (409: {message})", status=409)
        if status in _TRANSIENT_STATUS:
            return TransientError(
                f"cannot {what}: the IM at {self.url} answered {status}: {message}", status=status
            )
        return RemoteError(f"cannot {what}: the IM at {self.url} answered {status}: {message}", status=status)

    def _im_line_hint(self) -> str:
        im_lines = [e for e in self.entries if e.type == IM_AUTH_TYPE]
        if not im_lines:
            return (
                f"no 'type = {IM_AUTH_TYPE}; username = ...; password = ...' (or 'token = ...') line was "
                "sent; add one to the auth file"
            )
        return f"its 'type = {IM_AUTH_TYPE}' line was rejected; check the username/password or token"

    # An unreadable answer is transient: the request was served (a change took effect), only the answer
    # is lost, so a change must be treated as ambiguous and a read may simply be asked again.
    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise TransientError(
                f"cannot {what}: the IM at {self.url} answered {response.status_code} with a body that is "
                f"not JSON ({kind}, {len(response.content)} bytes): a gateway or a cut-off answer; try again"
            ) from None

    def _shape_error(self, what: str, expected: str) -> TransientError:
        return TransientError(
            f"cannot {what}: the IM at {self.url} answered 200 with JSON of an unexpected shape (expected "
            f"{expected}); is {self.url} an IM REST endpoint?"
        )

    def _object(self, response: requests.Response, what: str) -> dict[str, Any]:
        data = self._json(response, what)
        if not isinstance(data, dict):
            raise self._shape_error(what, "an object")
        return data

    def _uris(self, response: requests.Response, what: str) -> list[str]:
        """The ids at the end of a ``{"uri-list": [{"uri": ...}]}`` answer."""
        items = self._object(response, what).get("uri-list") or []
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("uri"), str) for item in items
        ):
            raise self._shape_error(what, '{"uri-list": [{"uri": "..."}]}')
        return [infrastructure_id_from_uri(item["uri"]) for item in items]

    # ---- reads -----------------------------------------------------------------------------

    def version(self) -> str:
        return self._text_property("/version", "version", "read the IM version").strip()

    def list_ids(self) -> list[str]:
        """Ids of every infrastructure this user owns on the IM."""
        what = "list infrastructures"
        return self._uris(self._request("GET", "/infrastructures", what=what), what)

    def state(self, inf_id: str) -> InfraState:
        what = f"read the state of infrastructure {inf_id}"
        body = self._object(self._request("GET", f"/infrastructures/{inf_id}/state", what=what), what).get(
            "state"
        )
        vm_states = body.get("vm_states") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(vm_states or {}, dict):
            raise self._shape_error(what, '{"state": {"state": ..., "vm_states": {...}}}')
        return InfraState(
            state=str(body.get("state", "unknown")),
            vm_states={str(k): str(v) for k, v in (vm_states or {}).items()},
        )

    def vm_ids(self, inf_id: str) -> list[str]:
        what = f"list the VMs of infrastructure {inf_id}"
        return self._uris(self._request("GET", f"/infrastructures/{inf_id}", what=what), what)

    def outputs(self, inf_id: str) -> dict[str, Any]:
        what = f"read the outputs of infrastructure {inf_id}"
        values = self._object(
            self._request("GET", f"/infrastructures/{inf_id}/outputs", what=what), what
        ).get("outputs")
        if not isinstance(values or {}, dict):
            raise self._shape_error(what, '{"outputs": {...}}')
        return dict(values or {})

    def contmsg(self, inf_id: str, vm_id: str | None = None) -> str:
        """The contextualization log of the infrastructure, or of one VM."""
        path = f"/infrastructures/{inf_id}" + (f"/vms/{vm_id}" if vm_id is not None else "") + "/contmsg"
        what = f"read the contextualization log of {inf_id}" + (f" VM {vm_id}" if vm_id is not None else "")
        return self._text_property(path, "contmsg", what)

    def radl(self, inf_id: str) -> str:
        return self._text_property(f"/infrastructures/{inf_id}/radl", "radl", f"read the RADL of {inf_id}")

    def tosca(self, inf_id: str) -> str:
        return self._text_property(f"/infrastructures/{inf_id}/tosca", "tosca", f"read the TOSCA of {inf_id}")

    def _text_property(self, path: str, key: str, what: str) -> str:
        response = self._request("GET", path, what=what)
        if "json" not in response.headers.get("Content-Type", ""):
            return response.text
        data = self._json(response, what)
        value = data.get(key, "") if isinstance(data, dict) else data
        return value if isinstance(value, str) else str(value)

    def vm_info(self, inf_id: str, vm_id: str) -> dict[str, Any]:
        """The ``system`` part of one VM's RADL as a dict (state, ``net_interface.0.ip``, ...)."""
        what = f"read VM {vm_id} of infrastructure {inf_id}"
        data = self._json(self._request("GET", f"/infrastructures/{inf_id}/vms/{vm_id}", what=what), what)
        items = data.get("radl", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise self._shape_error(what, '{"radl": [{"class": "system", ...}]}')
        for item in items:
            if isinstance(item, dict) and item.get("class") == "system":
                return item
        return {}

    def cloud_images(self, cloud_id: str, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """``GET /clouds/<id>/images``: images the IM can launch on that cloud (``[{uri, name}]``)."""
        what = f"list the images of cloud {cloud_id}"
        params = {"filters": ",".join(f"{k}={v}" for k, v in filters.items())} if filters else None
        data = self._json(self._request("GET", f"/clouds/{cloud_id}/images", what=what, params=params), what)
        images = data.get("images", []) if isinstance(data, dict) else data
        return [dict(image) for image in images or []]

    def cloud_quotas(self, cloud_id: str) -> dict[str, Any]:
        """``GET /clouds/<id>/quotas``: ``{resource: {used, limit}}`` as the IM reports it."""
        what = f"read the quotas of cloud {cloud_id}"
        data = self._json(self._request("GET", f"/clouds/{cloud_id}/quotas", what=what), what)
        quotas = data.get("quotas", data) if isinstance(data, dict) else {}
        return dict(quotas)

    # ---- writes ----------------------------------------------------------------------------

    def create(self, tosca: str) -> str:
        """Submit a TOSCA template asynchronously, ONCE; returns the new infrastructure id.

        Never repeated here: after a ``TransientError`` the IM may still create it (the request can land
        late), so only the caller, which knows the deployment's tag, may decide to send it again.
        """
        what = "create the infrastructure"
        response = self._send(
            "POST",
            "/infrastructures",
            what=what,
            params={"async": "true"},
            data=tosca.encode(),
            headers={"Content-Type": "text/yaml"},
            template=True,
        )
        header_id = response.headers.get("InfID")
        if header_id:
            return header_id
        uri = self._object(response, what).get("uri")
        if not isinstance(uri, str):
            raise self._shape_error(what, '{"uri": ".../infrastructures/<id>"}')
        return infrastructure_id_from_uri(uri)

    def infrastructure_tag(self, inf_id: str) -> str | None:
        """The deployment tag in the template of ``inf_id`` (None: not one of deployer's).

        ``RemoteNotFound`` when it is gone. Infrastructures created from RADL have no TOSCA: their RADL
        description carries the tag.
        """
        try:
            text = self.tosca(inf_id)
        except (RemoteNotFound, TransientError):
            raise
        except RemoteError:
            text = self.radl(inf_id)
        return tag_in(text)

    def add_vms(self, inf_id: str, system: str, count: int) -> list[str]:
        """Add ``count`` VMs of one RADL system (TOSCA node) and nothing else: returns their ids.

        A relative operation (RADL ``deploy system count`` that refers to the stored definitions), so two
        overlapping scales of different groups cannot undo each other, as posting a whole TOSCA with
        absolute counts would. Sent once: a ``TransientError`` means the outcome is unknown.
        """
        if count <= 0:
            return []
        radl = self.radl(inf_id)
        if not re.search(rf"^system {re.escape(system)}\b", radl, re.MULTILINE):
            raise RemoteError(f"infrastructure {inf_id} has no system (TOSCA node) {system!r} to add VMs to")
        deploy = re.search(rf"^deploy {re.escape(system)} \d+(?: (\S+))?\s*$", radl, re.MULTILINE)
        cloud = f" {deploy.group(1)}" if deploy and deploy.group(1) else ""
        # References (a name with no body) make the IM use its stored definitions of the networks and the
        # system; the system's network interfaces name the networks, so each is referenced too.
        networks = "".join(f"network {name}\n" for name in re.findall(r"^network (\S+)", radl, re.MULTILINE))
        body = f"{networks}system {system}\ndeploy {system} {count}{cloud}\n"
        what = f"add {count} VM(s) of {system} to infrastructure {inf_id}"
        response = self._send(
            "POST",
            f"/infrastructures/{inf_id}",
            what=what,
            data=body.encode(),
            headers={"Content-Type": "text/plain"},
        )
        return self._uris(response, what) if response.content.strip() else []

    def remove_vms(self, inf_id: str, vm_ids: Iterable[str]) -> None:
        """Remove VMs by IM id. Repeating is safe: a VM already gone is not an error."""
        ids = ",".join(vm_ids)
        if not ids:
            return
        try:
            self._request(
                "DELETE", f"/infrastructures/{inf_id}/vms/{ids}", what=f"remove VMs {ids} of {inf_id}"
            )
        except RemoteNotFound:
            log.info("VMs %s of %s were already gone", ids, inf_id)

    def reconfigure(self, inf_id: str) -> None:
        self._send("PUT", f"/infrastructures/{inf_id}/reconfigure", what=f"reconfigure {inf_id}")

    def stop(self, inf_id: str) -> None:
        self._request("PUT", f"/infrastructures/{inf_id}/stop", what=f"stop {inf_id}")

    def start(self, inf_id: str) -> None:
        self._request("PUT", f"/infrastructures/{inf_id}/start", what=f"start {inf_id}")

    def destroy(self, inf_id: str, *, busy_wait: float = 60.0) -> bool:
        """Destroy an infrastructure. Returns False when it was already gone (which is success).

        While the IM is still launching VMs it answers 409; that is waited out for ``busy_wait`` s.
        """
        deadline = time.monotonic() + busy_wait
        while True:
            try:
                self._request("DELETE", f"/infrastructures/{inf_id}", what=f"destroy infrastructure {inf_id}")
            except RemoteNotFound:
                return False
            except RemoteConflict:
                if time.monotonic() >= deadline:
                    raise
                log.info("infrastructure %s is busy; destroying it when the IM lets us", inf_id)
                self._sleep(1.0)
                continue
            return True

    def estimate(self, tosca: str) -> dict[str, Any]:
        """The IM's resource estimate for a template (``dry_run``): nothing is created."""
        what = "estimate the resources of the template"
        response = self._request(
            "POST",
            "/infrastructures",
            what=what,
            params={"dry_run": "true"},
            data=tosca.encode(),
            headers={"Content-Type": "text/yaml"},
            template=True,
        )
        return dict(self._json(response, what))


def _not_sent(err: requests.RequestException) -> bool:
    """True when the request surely never reached the server."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    return isinstance(err, requests.ConnectionError) and "Connection refused" in str(err)


def _is_html(response: requests.Response) -> bool:
    kind = response.headers.get("Content-Type", "")
    return "html" in kind or response.text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))


def _html_title(text: str) -> str:
    found = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    return " ".join(found.group(1).split())[:80] if found else ""


def _reason(err: Exception) -> str:
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return "the answer was cut off"
    text = str(err)
    for marker in ("Connection refused", "RemoteDisconnected", "Connection reset", "Connection aborted"):
        if marker in text:
            return marker.lower()
    return err.__class__.__name__


def _im_message(response: requests.Response) -> str:
    """The IM's own error text, trimmed of Python tracebacks (keep the part a user can act on)."""
    text = response.text
    try:
        data = response.json()
        if isinstance(data, dict) and data.get("message"):
            text = str(data["message"])
    except ValueError:
        pass
    return _trim_traceback(text.strip()) or response.reason or "no message"


def _trim_traceback(text: str) -> str:
    """Keep the messages, drop stack frames: frame and source lines are indented by 2+ blanks."""
    kept = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith(("  ", "\t\t", "\t ", " \t", "Traceback ("))
    ]
    return " ".join(" ".join(kept).split())[:2000]
