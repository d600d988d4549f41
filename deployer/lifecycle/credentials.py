"""Where the IM endpoint and its credentials come from: the single seam for every life-cycle command.

Called by ``deployer.lifecycle.deploy`` (and through it by the CLI). Three sources, in this order:

- ``--auth-file F``: an IM auth file (the im_client format), with ``--im-url`` or a profile's URL;
- ``--cloud local``: credentials generated once per DEPLOYER_HOME (an IM user/password and a Dummy
  cloud line), kept 0600 next to the local IM's data, and the embedded local IM (started if needed);
- any other cloud: ``deployer.adapters.clouds.profiles.auth_entries_for_clouds(paths, clouds)``
  (cloud profiles; a multi-cloud cluster gets one line per cloud).
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
    """An IM URL and the credentials to use there. ``auth_file`` is recorded so later commands find it."""

    im_url: str
    entries: tuple[AuthEntry, ...]
    auth_file: Path | None = None

    def client(self, *, insecure: bool = False) -> IMClient:
        return IMClient(self.im_url, self.entries, verify=not insecure)


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


def resolve_endpoint(
    paths: Paths,
    clouds: Sequence[str],
    *,
    im_url: str | None = None,
    auth_file: Path | None = None,
    start_local: bool = True,
) -> Endpoint:
    """The IM endpoint and credentials for a new deployment; ``clouds[0]`` is the front end's cloud."""
    cloud = clouds[0]
    if auth_file is not None:
        entries = load_auth_file(auth_file)
        if im_url is None and cloud == LOCAL_CLOUD:
            im_url = _local_url(paths, start_local)
        if im_url is None:
            raise UserError("--auth-file needs --im-url too (the IM endpoint those credentials are for)")
        return Endpoint(im_url, tuple(entries), auth_file=auth_file.resolve())
    if cloud == LOCAL_CLOUD:
        url = im_url or _local_url(paths, start_local)
        return Endpoint(url, tuple(local_auth_entries(paths)))
    profile_url, entries = _profile_endpoint(paths, clouds, im_url)
    url = im_url or profile_url
    if url is None:
        raise UserError(f"cloud profile {cloud!r} names no IM URL; pass --im-url")
    return Endpoint(url, tuple(entries))


def endpoint_for_record(
    paths: Paths, record: DeploymentRecord, *, auth_file: Path | None = None, im_url: str | None = None
) -> Endpoint:
    """The endpoint of an existing deployment (``auth_file``/``im_url`` override what was recorded)."""
    recorded_file = Path(record.auth_file) if record.auth_file else None
    chosen_file = auth_file or recorded_file
    if chosen_file is not None:
        return Endpoint(im_url or record.im_url, tuple(load_auth_file(chosen_file)), auth_file=chosen_file)
    if record.cloud == LOCAL_CLOUD and im_url is None:
        # The local IM may have been restarted on another port since: ask it where it is now.
        running = local_im(paths).status()
        url = running.url if running is not None else record.im_url
        return Endpoint(url, tuple(local_auth_entries(paths)))
    if record.cloud == LOCAL_CLOUD:
        return Endpoint(im_url or record.im_url, tuple(local_auth_entries(paths)))
    clouds = [c for c in record.clouds.split(",") if c] or [record.cloud]
    _, entries = _profile_endpoint(paths, clouds, im_url or record.im_url)
    return Endpoint(im_url or record.im_url, tuple(entries))


def _local_url(paths: Paths, start: bool) -> str:
    server = local_im(paths)
    info = server.start() if start else server.status()
    if info is None:
        raise UserError("the local IM is not running; start it with `deployer local start`")
    return info.url


def _profile_endpoint(
    paths: Paths, clouds: Sequence[str], im_url: str | None
) -> tuple[str | None, list[AuthEntry]]:
    try:
        from deployer.adapters.clouds.profiles import auth_entries_for_clouds
    except ImportError:
        raise UserError(
            f"no credentials for cloud {clouds[0]!r}: pass --auth-file FILE (IM auth-file format) "
            "or add a cloud profile with `deployer clouds add`"
        ) from None
    url, entries = auth_entries_for_clouds(paths, list(clouds), im_url=im_url)
    return url, list(entries)
