"""Where the IM endpoint and its credentials come from: the single seam for every life-cycle command.

Called by ``deployer.lifecycle.deploy`` (and through it by the CLI). Three sources, in this order:

- ``--auth-file F``: an IM auth file (the im_client format), with ``--im-url`` or a profile's URL;
- ``--cloud local`` alone: credentials generated once per DEPLOYER_HOME (an IM user/password and a
  Dummy cloud line), kept 0600 next to the local IM's data, and the embedded local IM (started if needed);
- any other set of clouds: ``deployer.adapters.clouds.profiles.auth_entries_for_clouds(paths, clouds)``
  (cloud profiles; a multi-cloud cluster gets one line per cloud, ``--token`` passed through). Clusters
  on local-kind profiles only (simulated) get the embedded IM's user as their IM line unless a token or
  the profile names one, and the embedded IM when no profile names an IM URL.

A deployment's later commands use every cloud it was created on (``record.clouds``) and the TLS choice
made at create (``record.insecure``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.im.auth import AuthEntry, load_auth_file, write_auth_file
from deployer.adapters.im.client import IM_AUTH_TYPE, IMClient
from deployer.adapters.im.local_server import LocalIM
from deployer.adapters.state.store import DeploymentRecord
from deployer.core.render import cloud_auth_id
from deployer.errors import UserError
from deployer.paths import Paths, ensure_private_dir

LOCAL_CLOUD = "local"
LOCAL_AUTH_FILE = "auth.dat"


@dataclass(frozen=True)
class Endpoint:
    """An IM URL and the credentials to use there. ``auth_file`` is recorded so later commands find it;
    ``insecure`` is the deployment's remembered ``--insecure``."""

    im_url: str
    entries: tuple[AuthEntry, ...]
    auth_file: Path | None = None
    insecure: bool = False

    def client(self, *, insecure: bool = False) -> IMClient:
        return IMClient(self.im_url, self.entries, verify=not (insecure or self.insecure))


def local_im(paths: Paths) -> LocalIM:
    return LocalIM(paths.local_im_dir)


def local_auth_entries(paths: Paths) -> list[AuthEntry]:
    """The local IM's credentials, generated on first use and kept 0600 under DEPLOYER_HOME."""
    path = paths.local_im_dir / LOCAL_AUTH_FILE
    if path.exists():
        return load_auth_file(path)
    ensure_private_dir(paths.local_im_dir)
    entries = [
        AuthEntry(IM_AUTH_TYPE, None, {"username": "deployer", "password": secrets.token_urlsafe(24)}),
        # The rendered TOSCA places local VMs on this id (see deployer.core.render.cloud_auth_id).
        AuthEntry("Dummy", cloud_auth_id(LOCAL_CLOUD), {}),
    ]
    write_auth_file(path, entries)
    return entries


def record_clouds(record: DeploymentRecord) -> list[str]:
    """Every cloud of a deployment, front end's first (records written before ``clouds``: its cloud)."""
    return [c for c in record.clouds.split(",") if c] or [record.cloud]


def resolve_endpoint(
    paths: Paths,
    clouds: Sequence[str],
    *,
    im_url: str | None = None,
    auth_file: Path | None = None,
    start_local: bool = True,
    token: str | None = None,
    insecure: bool = False,
) -> Endpoint:
    """The IM endpoint and credentials for a new deployment; ``clouds[0]`` is the front end's cloud."""
    if auth_file is not None:
        entries = load_auth_file(auth_file)
        if im_url is None and clouds[0] == LOCAL_CLOUD:
            im_url = _local_url(paths, start_local)
        if im_url is None:
            raise UserError("--auth-file needs --im-url too (the IM endpoint those credentials are for)")
        return Endpoint(im_url, tuple(entries), auth_file=auth_file.resolve(), insecure=insecure)
    if list(clouds) == [LOCAL_CLOUD]:
        url = im_url or _local_url(paths, start_local)
        return Endpoint(url, tuple(local_auth_entries(paths)), insecure=insecure)
    url, entries = _profile_endpoint(paths, clouds, im_url, token, start_local)
    return Endpoint(url, tuple(entries), insecure=insecure)


def endpoint_for_record(
    paths: Paths,
    record: DeploymentRecord,
    *,
    auth_file: Path | None = None,
    im_url: str | None = None,
    token: str | None = None,
) -> Endpoint:
    """The endpoint of an existing deployment (``auth_file``/``im_url`` override what was recorded)."""
    recorded_file = Path(record.auth_file) if record.auth_file else None
    chosen_file = auth_file or recorded_file
    if chosen_file is not None:
        entries = tuple(load_auth_file(chosen_file))
        return Endpoint(im_url or record.im_url, entries, auth_file=chosen_file, insecure=record.insecure)
    clouds = record_clouds(record)
    url = im_url or _recorded_url(paths, record, clouds)
    if clouds == [LOCAL_CLOUD]:
        return Endpoint(url, tuple(local_auth_entries(paths)), insecure=record.insecure)
    _, entries = _profile_endpoint(paths, clouds, url, token, start_local=False)
    return Endpoint(url, tuple(entries), insecure=record.insecure)


def _recorded_url(paths: Paths, record: DeploymentRecord, clouds: Sequence[str]) -> str:
    """The recorded IM URL, or where the embedded IM runs now for a deployment that lives there (it may
    have been restarted on another port since)."""
    if _on_embedded_im(paths, clouds):
        running = local_im(paths).status()
        if running is not None:
            return running.url
    return record.im_url


def _on_embedded_im(paths: Paths, clouds: Sequence[str]) -> bool:
    from deployer.adapters.clouds.profiles import get_profile, im_url_for

    profiles = [get_profile(paths, cloud) for cloud in clouds]
    return all(p.kind == LOCAL_CLOUD and im_url_for(p) is None for p in profiles)


def _local_url(paths: Paths, start: bool) -> str:
    server = local_im(paths)
    info = server.start() if start else server.status()
    if info is None:
        raise UserError("the local IM is not running; start it with `deployer local start`")
    return info.url


def _profile_endpoint(
    paths: Paths, clouds: Sequence[str], im_url: str | None, token: str | None, start_local: bool
) -> tuple[str, list[AuthEntry]]:
    """(IM URL, entries) from the cloud profiles; simulated clusters default to the embedded IM."""
    from deployer.adapters.clouds.profiles import auth_entries_for_clouds, get_profile

    profiles = [get_profile(paths, cloud) for cloud in clouds]
    simulated = all(p.kind == LOCAL_CLOUD for p in profiles)
    im_entry = None
    if simulated and token is None and not any(p.get("im_username") for p in profiles):
        # Dummy clouds need no cloud credentials; the IM line is the embedded IM's own user.
        im_entry = next(e for e in local_auth_entries(paths) if e.type == IM_AUTH_TYPE)
    url, entries = auth_entries_for_clouds(paths, clouds, token=token, im_url=im_url, im_entry=im_entry)
    if url is None and simulated:
        url = _local_url(paths, start_local)
    if url is None:
        raise UserError(f"cloud profile {clouds[0]!r} names no IM URL; pass --im-url")
    return url, entries
