"""A typed client for the Infrastructure Manager REST API.

Called by the life-cycle use cases (``deployer.lifecycle``) and the IM power manager. Every call has a
timeout. Only calls that are safe to repeat (GETs, DELETEs, dry runs) are retried, with jittered
exponential backoff. A create is never repeated blindly: after an ambiguous failure (timeout, dropped
connection) the client lists the infrastructures and recognises ours by the deployment tag embedded in
its TOSCA before deciding anything. IM errors become ``deployer.errors`` types carrying the IM's own
message. TLS is verified unless the caller explicitly asks for ``verify=False``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from deployer.adapters.im.auth import AuthEntry, auth_header
from deployer.errors import (
    AuthError,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    TransientError,
)
from deployer.logs import redact, register_secret

log = logging.getLogger(__name__)

IM_AUTH_TYPE = "InfrastructureManager"
# (connect, read) seconds. Async creates and state reads answer quickly; a synchronous
# removal or reconfigure may take longer on a busy IM.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
# After an ambiguous create, how often (and how far apart) to look for the infrastructure before
# resubmitting: the IM may still be parsing the template when our connection broke.
_LOOKUPS_AFTER_AMBIGUOUS = 4
_LOOKUP_PAUSE_S = 1.5


class Credentials(Protocol):
    """Short-lived credentials (OIDC access tokens) that the client asks for before every request."""

    def entries(self) -> Sequence[AuthEntry]:
        """The auth entries to send now; raises rather than return an expired token."""
        ...

    def renewed(self, rejected: Sequence[AuthEntry]) -> Sequence[AuthEntry] | None:
        """The IM answered 401 to ``rejected``: new entries to retry with once, or None."""
        ...


class CreateOutcomeUnknown(TransientError):
    """A create request may or may not have produced an infrastructure, and the IM cannot be asked."""


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
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
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
        self._timeout = timeout
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
        credentials). ``template``: the body is a TOSCA."""
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
        except (requests.ConnectionError, requests.Timeout) as err:
            raise TransientError(
                f"cannot {what}: the IM at {self.url} did not answer ({_reason(err)})"
            ) from err

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
            return TransientError(f"cannot {what}: IM error {status}: {message}", status=status)
        return RemoteError(f"cannot {what}: IM error {status}: {message}", status=status)

    def _im_line_hint(self) -> str:
        im_lines = [e for e in self.entries if e.type == IM_AUTH_TYPE]
        if not im_lines:
            return (
                f"no 'type = {IM_AUTH_TYPE}; username = ...; password = ...' (or 'token = ...') line was "
                "sent; add one to the auth file"
            )
        return f"its 'type = {IM_AUTH_TYPE}' line was rejected; check the username/password or token"

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"cannot {what}: the IM answered with non-JSON: {response.text[:200]!r}"
            ) from None

    # ---- reads -----------------------------------------------------------------------------

    def version(self) -> str:
        return self._text_property("/version", "version", "read the IM version").strip()

    def list_ids(self) -> list[str]:
        """Ids of every infrastructure this user owns on the IM."""
        data = self._json(self._request("GET", "/infrastructures", what="list infrastructures"), "list")
        return [infrastructure_id_from_uri(item["uri"]) for item in data.get("uri-list") or []]

    def state(self, inf_id: str) -> InfraState:
        what = f"read the state of infrastructure {inf_id}"
        data = self._json(self._request("GET", f"/infrastructures/{inf_id}/state", what=what), what)
        body = data.get("state") or {}
        vm_states = {str(k): str(v) for k, v in (body.get("vm_states") or {}).items()}
        return InfraState(state=str(body.get("state", "unknown")), vm_states=vm_states)

    def vm_ids(self, inf_id: str) -> list[str]:
        what = f"list the VMs of infrastructure {inf_id}"
        data = self._json(self._request("GET", f"/infrastructures/{inf_id}", what=what), what)
        return [infrastructure_id_from_uri(item["uri"]) for item in data.get("uri-list") or []]

    def outputs(self, inf_id: str) -> dict[str, Any]:
        what = f"read the outputs of infrastructure {inf_id}"
        data = self._json(self._request("GET", f"/infrastructures/{inf_id}/outputs", what=what), what)
        return dict(data.get("outputs") or {})

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

    def create(self, tosca: str, *, deployment_tag: str, skip_ids: Iterable[str] = ()) -> str:
        """Submit a TOSCA template asynchronously; returns the new infrastructure id.

        On an ambiguous failure the IM may or may not have created it: look for ``deployment_tag``
        among the user's infrastructures (ignoring ``skip_ids``, known to be other deployments) and
        submit once more only when the IM confirms it is absent. ``CreateOutcomeUnknown`` when the IM
        cannot even be asked.
        """
        what = "create the infrastructure"
        for attempt in (1, 2):
            try:
                response = self._send(
                    "POST",
                    "/infrastructures",
                    what=what,
                    params={"async": "true"},
                    data=tosca.encode(),
                    headers={"Content-Type": "text/yaml"},
                    template=True,
                )
            except TransientError as err:
                if err.status is not None and err.status not in (502, 504):
                    raise  # the IM itself answered with an error: nothing was created
                log.warning("%s; looking for the infrastructure by its deployment tag", err)
                found = self._locate_after_ambiguity(deployment_tag, skip_ids, err)
                if found is not None:
                    return found
                if attempt == 2:
                    raise TransientError(
                        f"{err}; the IM has no infrastructure with tag {deployment_tag}, so nothing was "
                        "created. Run the command again when the IM is healthy"
                    ) from None
                log.warning("the IM has no infrastructure with tag %s: submitting once more", deployment_tag)
                continue
            return self._created_id(response, what)
        raise AssertionError("unreachable")

    def _created_id(self, response: requests.Response, what: str) -> str:
        header_id = response.headers.get("InfID")
        if header_id:
            return header_id
        return infrastructure_id_from_uri(self._json(response, what)["uri"])

    def _locate_after_ambiguity(
        self, deployment_tag: str, skip_ids: Iterable[str], cause: TransientError
    ) -> str | None:
        """Look for the tag a few times, seconds apart (the IM may still be registering it).

        None only when the IM answered and has no such infrastructure.
        """
        answered = False
        found: str | None = None
        last_error: TransientError = cause
        for lookup in range(_LOOKUPS_AFTER_AMBIGUOUS):
            if lookup:
                self._sleep(_LOOKUP_PAUSE_S)
            try:
                found = self.find_by_tag(deployment_tag, skip_ids=skip_ids)
                answered = True
            except TransientError as err:
                last_error = err
            if found is not None:
                break
        if found is None and not answered:
            raise CreateOutcomeUnknown(
                f"{last_error}; cannot tell whether the IM created the infrastructure (deployment tag "
                f"{deployment_tag})"
            )
        return found

    def find_by_tag(self, deployment_tag: str, *, skip_ids: Iterable[str] = ()) -> str | None:
        """The id of the user's infrastructure whose template carries ``deployment_tag``, if any."""
        skip = set(skip_ids)
        for inf_id in self.list_ids():
            if inf_id in skip:
                continue
            try:
                text = self.tosca(inf_id)
            except RemoteNotFound:
                continue
            except RemoteError:  # created from RADL: the tag rides in the RADL description
                try:
                    text = self.radl(inf_id)
                except RemoteNotFound:
                    continue
            if deployment_tag in text:
                return inf_id
        return None

    def update(self, inf_id: str, tosca: str) -> list[str]:
        """POST a modified TOSCA (new ``count``, ``removal_list``): returns the ids of VMs added.

        Not retried: a repeated scale-up would add VMs twice. The caller re-reads the state instead.
        """
        what = f"modify infrastructure {inf_id}"
        response = self._send(
            "POST",
            f"/infrastructures/{inf_id}",
            what=what,
            data=tosca.encode(),
            headers={"Content-Type": "text/yaml"},
            template=True,
        )
        if not response.content.strip():
            return []
        data = self._json(response, what)
        return [infrastructure_id_from_uri(item["uri"]) for item in data.get("uri-list") or []]

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


def _reason(err: Exception) -> str:
    if isinstance(err, requests.Timeout):
        return "timed out"
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
