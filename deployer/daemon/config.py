"""Assembling a daemon from its sources: the cluster spec, the IM endpoint and the Kubernetes credentials.

Called by ``deployer daemon run`` / ``explain``. The spec comes from ``--spec FILE`` or, for a cluster that
deployer created, from the elasticity settings embedded in the deployment's TOSCA (the ``elasticity`` node's
``config`` property, written by ``deployer.core.render``), so the daemon needs no copy of the user's file.
Builds the node groups and settings (``deployer.core.elasticity.from_spec``), the Wake-on-LAN board table,
and a power manager per group.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.adapters.im.auth import AuthEntry
from deployer.adapters.im.client import IMClient
from deployer.adapters.power import PowerManager
from deployer.adapters.power.edge import EdgeBoard, EdgePowerManager
from deployer.adapters.power.im import IMPowerManager
from deployer.core.elasticity.from_spec import edge_node_name, groups_from_spec, settings_from_spec
from deployer.core.elasticity.model import ElasticitySettings, GroupKind, NodeGroup
from deployer.core.spec import ClusterSpec, validate_spec
from deployer.daemon.credentials import TokenSource
from deployer.daemon.loop import LoopSettings
from deployer.errors import UserError

ELASTICITY_NODE = "elasticity"


@dataclass(frozen=True)
class DaemonPlan:
    """Everything the daemon decides with, derived from one spec."""

    cluster: str
    groups: tuple[NodeGroup, ...]
    settings: ElasticitySettings
    loop: LoopSettings


def embedded_config(tosca: str, cluster: str) -> str:
    """The elasticity config embedded in a rendered deployment TOSCA: the ``elasticity`` node's ``config``
    property, the JSON string exactly as rendered (what the ``elastic_daemon`` role gets as its spec)."""
    try:
        document = yaml.safe_load(tosca) or {}
        config = document["topology_template"]["node_templates"][ELASTICITY_NODE]["properties"]["config"]
        json.loads(config)
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"deployment {cluster!r} carries no elasticity settings (was it created with elasticity.enabled: "
            "false?); pass --spec FILE"
        ) from err
    return str(config)


def spec_from_tosca(tosca: str, cluster: str) -> ClusterSpec:
    """The groups and elasticity settings embedded in a rendered deployment TOSCA."""
    return spec_from_config(json.loads(embedded_config(tosca, cluster)), cluster)


def spec_from_config(config: Mapping[str, Any], cluster: str) -> ClusterSpec:
    """A spec from the embedded elasticity config (``elasticity``, ``worker_groups``, ``edge_groups``), as the
    TOSCA carries it and as the ``elastic_daemon`` Ansible role writes it under ``settings.spec``."""
    return validate_spec({**config, "name": cluster})


@dataclass(frozen=True)
class DaemonFile:
    """``daemon run --config FILE``: what the ``elastic_daemon`` Ansible role writes on the front end.

    ``cluster`` and ``credentials_file`` (an IM auth file) at the top, and optionally ``token`` (where
    the daemon gets fresh access tokens for that file's token fields, ``deployer.daemon.credentials``);
    under ``settings``: ``im_url``, ``infrastructure_id``, ``spec`` (the embedded elasticity config), and
    optionally ``kubeconfig``, ``ssh_key`` and ``insecure``.
    """

    cluster: str | None
    auth_file: Path | None
    im_url: str | None
    infra_id: str | None
    spec: Mapping[str, Any] | None
    kubeconfig: Path | None
    ssh_key: str | None
    insecure: bool
    token: TokenSource | None = None


_SETTINGS_KEYS = frozenset({"im_url", "infrastructure_id", "spec", "kubeconfig", "ssh_key", "insecure"})


def read_daemon_file(path: Path) -> DaemonFile:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"cannot read the daemon config {path}: {err}") from err
    settings = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise UserError(f"{path}: expected a mapping with 'cluster', 'credentials_file' and 'settings'")
    unknown = sorted(set(settings) - _SETTINGS_KEYS)
    if unknown:
        known = ", ".join(sorted(_SETTINGS_KEYS))
        raise UserError(f"{path}: settings.{unknown[0]} is not a daemon setting (known: {known})")
    spec = settings.get("spec")
    if isinstance(spec, str):  # the TOSCA property's JSON string, copied verbatim
        try:
            spec = json.loads(spec)
        except ValueError as err:
            raise UserError(f"{path}: settings.spec is not valid JSON: {err}") from err

    def optional_path(value: object) -> Path | None:
        return Path(str(value)) if value else None

    return DaemonFile(
        cluster=data.get("cluster") or None,
        auth_file=optional_path(data.get("credentials_file")),
        im_url=settings.get("im_url"),
        infra_id=settings.get("infrastructure_id"),
        spec=spec,
        kubeconfig=optional_path(settings.get("kubeconfig")),
        ssh_key=settings.get("ssh_key"),
        insecure=bool(settings.get("insecure", False)),
        token=TokenSource.from_mapping(data["token"], str(path)) if data.get("token") else None,
    )


def daemon_plan(spec: ClusterSpec, cluster: str) -> DaemonPlan:
    section = spec.elasticity
    return DaemonPlan(
        cluster=cluster,
        groups=groups_from_spec(spec),
        settings=settings_from_spec(spec),
        loop=LoopSettings(
            batch_idle=section.batch_idle, batch_max=section.batch_max, resync_period=section.resync_period
        ),
    )


def edge_boards(spec: ClusterSpec, *, ssh_key: str | None = None) -> dict[str, EdgeBoard]:
    """Node name -> how to wake and stop it, for every board of every edge group."""
    boards: dict[str, EdgeBoard] = {}
    for group in spec.edge_groups:
        for host in group.hosts:
            name = edge_node_name(host)
            boards[name] = EdgeBoard(
                name=name,
                address=host.address,
                mac=host.mac,
                ssh_user=host.user,
                ssh_port=host.port,
                ssh_key=ssh_key or group.ssh_key,
                wol_broadcast=group.wol_broadcast,
            )
    return boards


class RefreshingIMClient:
    """A callable giving an ``IMClient`` whose credentials are fresh: ``entries`` is asked each time (for
    instance a refreshing OIDC token provider) and the client is rebuilt only when they changed."""

    def __init__(
        self, url: str, entries: Callable[[], Sequence[AuthEntry]], *, verify: bool | str = True
    ) -> None:
        self._url = url
        self._entries = entries
        self._verify = verify
        self._lock = threading.Lock()
        self._current: tuple[tuple[AuthEntry, ...], IMClient] | None = None

    def __call__(self) -> IMClient:
        entries = tuple(self._entries())
        with self._lock:
            if self._current is None or self._current[0] != entries:
                if self._current is not None:
                    self._current[1].close()
                self._current = (entries, IMClient(self._url, entries, verify=self._verify))
            return self._current[1]


def power_managers(
    groups: Sequence[NodeGroup],
    *,
    im: IMClient | Callable[[], IMClient] | None,
    infrastructure_id: str | None,
    boards: dict[str, EdgeBoard],
    guard: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> dict[str, PowerManager]:
    """One power manager per group: the IM for cloud groups, Wake-on-LAN/SSH for edge groups."""
    managers: dict[str, PowerManager] = {}
    cloud = [group.name for group in groups if group.kind is GroupKind.CLOUD]
    if cloud:
        if im is None or infrastructure_id is None:
            raise UserError(
                f"worker group(s) {', '.join(cloud)} scale through the IM: name a deployment that deployer "
                "made, or pass --im-url, --auth-file and --infra-id"
            )
        managers.update(dict.fromkeys(cloud, IMPowerManager(im, infrastructure_id, guard=guard)))
    edge_manager = EdgePowerManager(boards)
    for group in groups:
        if group.kind is not GroupKind.CLOUD:
            managers[group.name] = edge_manager
    return managers
