"""What a cloud offers: flavors and images through openstacksdk, images and quotas through the IM.

Called by ``deployer clouds check`` (``check_cloud``) and by whoever sizes worker groups
(``openstack_flavors`` + ``deployer.core.placement.choose_flavor``). openstacksdk is imported inside
the functions: it is heavy and only the OpenStack-based kinds (openstack, egi with a Keystone URL)
need it.
What the IM itself reports for a cloud (its images and quotas) comes from ``IMClient.cloud_images`` and
``IMClient.cloud_quotas``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from deployer.adapters.im.auth import AuthEntry
from deployer.adapters.im.client import IMClient
from deployer.core.placement import Flavor
from deployer.errors import AuthError, DeployerError, RemoteError
from deployer.paths import Paths

# Connect/read seconds for Keystone, Nova and Glance during discovery.
OPENSTACK_TIMEOUT = 20


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str = ""
    url: str = ""  # the IM image URL (ost://HOST/ID), when known


def _gpus_from_extra_specs(specs: Mapping[str, Any]) -> int:
    """GPUs a flavor passes through: ``pci_passthrough:alias = a100:2[,t4:1]`` or ``resources:VGPU = 1``."""
    total = 0
    alias = str(specs.get("pci_passthrough:alias") or "")
    for part in filter(None, (p.strip() for p in alias.split(","))):
        count = part.partition(":")[2]
        total += int(count) if count.isdigit() else 1
    for key, value in specs.items():
        if re.fullmatch(r"resources\d*:VGPU|resources\d*:PGPU", str(key)) and str(value).isdigit():
            total += int(value)
    return total


def openstack_connection(
    auth_type: str, auth: Mapping[str, Any], region: str | None = None, verify: bool = True
) -> Any:
    """An openstacksdk Connection from explicit settings only (no clouds.yaml or OS_* lookup here)."""
    import openstack

    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type=auth_type,
        auth=dict(auth),
        region_name=region,
        verify=verify,
        api_timeout=OPENSTACK_TIMEOUT,
    )


def connection_for(config: Mapping[str, Any], verify: bool = True) -> Any:
    """A Connection for a resolved cloud config (``profiles.openstack_config``) or an EGI site."""
    return openstack_connection(
        str(config.get("auth_type") or "password"),
        config.get("auth") or {},
        config.get("region_name"),
        verify,
    )


def _sdk_errors() -> tuple[type[BaseException], ...]:
    from keystoneauth1 import exceptions as ks_exceptions
    from openstack import exceptions as os_exceptions

    return (os_exceptions.SDKException, ks_exceptions.ClientException)


def _translate(err: BaseException, what: str) -> DeployerError:
    status = getattr(err, "status_code", None) or getattr(err, "http_status", None)
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    if status in (401, 403):
        return AuthError(
            f"cannot {what}: the cloud refused the credentials ({status}): {text}", status=status
        )
    return RemoteError(f"cannot {what}: {text}", status=status if isinstance(status, int) else None)


def openstack_flavors(conn: Any) -> list[Flavor]:
    """Every flavor with vCPUs, RAM, disk and passed-through GPUs (from extra specs)."""
    try:
        flavors = []
        for item in conn.compute.flavors(details=True):
            specs = item.extra_specs
            if specs is None:  # older microversions: extra specs are a separate call
                specs = conn.compute.fetch_flavor_extra_specs(item).extra_specs or {}
            flavors.append(
                Flavor(
                    name=item.name,
                    vcpus=int(item.vcpus or 0),
                    ram_mib=int(item.ram or 0),
                    disk_gib=int(item.disk or 0),
                    gpus=_gpus_from_extra_specs(specs),
                    id=str(item.id),
                )
            )
        return flavors
    except _sdk_errors() as err:
        raise _translate(err, "list flavors") from None


def openstack_images(conn: Any, host: str | None = None) -> list[Image]:
    """Active images, with the ``ost://HOST/ID`` URL the IM wants when ``host`` is known."""
    try:
        images = []
        for item in conn.image.images():
            if item.status and item.status != "active":
                continue
            url = f"ost://{host}/{item.id}" if host else ""
            images.append(
                Image(id=str(item.id), name=str(item.name or ""), status=str(item.status or ""), url=url)
            )
        return images
    except _sdk_errors() as err:
        raise _translate(err, "list images") from None


@dataclass
class CheckReport:
    """What ``deployer clouds check`` found; every section is optional, problems go to ``errors``."""

    cloud: str
    kind: str
    auth_id: str
    im_url: str | None = None
    im_version: str | None = None
    token_source: str | None = None
    token_expires_in: float | None = None
    flavors: list[Flavor] | None = None
    images: list[Image] | None = None
    im_images: list[dict[str, Any]] | None = None
    quotas: dict[str, Any] | None = None
    errors: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def check_im(report: CheckReport, client: IMClient) -> None:
    """IM reachability, then the credentials (quotas need a valid cloud entry), then the images."""
    errors = report.errors if report.errors is not None else []
    report.errors = errors
    try:
        report.im_version = client.version()
    except DeployerError as err:
        errors.append(f"IM: {err}")
        return
    try:
        report.quotas = client.cloud_quotas(report.auth_id)
    except DeployerError as err:
        errors.append(f"IM quotas: {err}")
    try:
        report.im_images = client.cloud_images(report.auth_id)
    except DeployerError as err:
        errors.append(f"IM images: {err}")


def check_openstack(report: CheckReport, conn: Any, host: str | None) -> None:
    errors = report.errors if report.errors is not None else []
    report.errors = errors
    try:
        report.flavors = openstack_flavors(conn)
        report.images = openstack_images(conn, host)
    except DeployerError as err:
        errors.append(f"OpenStack: {err}")


def _local_im_url(paths: Paths) -> str | None:
    from deployer.adapters.im.local_server import LocalIM

    info = LocalIM(paths.local_im_dir).status()
    return info.url if info is not None else None


def check_cloud(
    paths: Paths,
    name: str,
    *,
    token: str | None = None,
    im_url: str | None = None,
    im_entry: AuthEntry | None = None,
    verify: bool = True,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
) -> CheckReport:
    """Reachability and credentials of one cloud profile, and what it offers. Never raises for remote
    problems: each becomes a line in ``report.errors`` so that one failing service does not hide the others.
    """
    import os
    import secrets
    import time

    from deployer.adapters.clouds import profiles as profiles_mod
    from deployer.adapters.clouds.tokens import token_expiry

    env = dict(os.environ) if env is None else dict(env)
    now = time.time() if now is None else now
    profile = profiles_mod.get_profile(paths, name)
    errors: list[str] = []
    report = CheckReport(cloud=name, kind=profile.kind, auth_id=profile.auth_id, errors=errors)

    if profile.kind == "local" and im_entry is None:
        # Reading a Dummy cloud's images and quotas touches no infrastructure: any IM user will do.
        im_entry = AuthEntry(
            "InfrastructureManager", None, {"username": "deployer-check", "password": secrets.token_hex(8)}
        )
    url = (
        im_url
        or profiles_mod.im_url_for(profile)
        or (_local_im_url(paths) if profile.kind == "local" else None)
    )
    auth = None
    try:
        auth = profiles_mod.build_cloud_auth(
            paths, [name], token=token, im_url=url, im_entry=im_entry, env=env
        )
        entries = auth.entries()  # fetches the access token once, for every use below
    except DeployerError as err:
        errors.append(f"credentials: {err}")

    access_token: str | None = None
    provider = auth.providers.get(name) if auth is not None else None
    if provider is not None and not errors:
        access_token = provider.current()
        report.token_source = provider.spec.describe()
        expiry = token_expiry(access_token)
        report.token_expires_in = None if expiry is None else round(expiry - now)

    try:
        if profile.kind == "openstack":
            config = profiles_mod.openstack_config(profile, env)
            host = urlparse(str((config.get("auth") or {}).get("auth_url", ""))).hostname
            check_openstack(report, connection_for(config, verify), host)
        elif profile.kind == "egi" and profile.get("keystone_url") and access_token:
            os_auth = {
                "auth_url": profile.get("keystone_url"),
                "identity_provider": "egi.eu",
                "protocol": "openid",
                "access_token": access_token,
            }
            if profile.get("project_id"):
                os_auth["project_id"] = profile.get("project_id")
            conn = openstack_connection("v3oidcaccesstoken", os_auth, verify=verify)
            check_openstack(report, conn, urlparse(profile.get("keystone_url") or "").hostname)
    except DeployerError as err:
        errors.append(f"OpenStack: {err}")

    if url is None:
        errors.append("IM: the embedded local IM is not running; start it with 'deployer local start'")
    elif auth is not None:
        report.im_url = url
        with IMClient(url, entries, verify=verify, timeout=(5.0, 30.0), retries=2) as client:
            check_im(report, client)
    return report
