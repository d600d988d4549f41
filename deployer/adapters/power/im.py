"""IM power manager: cloud worker VMs created and destroyed through the Infrastructure Manager.

Called by the daemon actuator for cloud groups. One scale-up of a group is ONE relative add of n VMs of that
group's system (``IMClient.add_vms``; the IM answers with the new VM ids); a scale-down removes the VMs by id.
Neither carries a count for any other group, so a scale of one group can never undo a concurrent change to
another (by the CLI, another daemon, or a user in the IM's dashboard).

Node names: the rendered TOSCA gives each worker the hostname ``<group>-#N#`` (``deployer.core.render.
WORKER_HOSTNAME``), and the IM replaces ``#N#`` with the VM's IM id, so the kubelet registers as
``<group>-<vm id>``. New VMs are named through that pattern; existing ones by the ``dns_name`` the IM
reports for them (falling back to the pattern), so a node name always leads back to its VM id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from deployer.adapters.im.client import IMClient
from deployer.adapters.power.port import PoweredOn
from deployer.core.elasticity.model import NodeGroup
from deployer.core.render import WORKER_HOSTNAME, node_id

log = logging.getLogger(__name__)


def node_name_for(group: str, vm_id: str, pattern: str = WORKER_HOSTNAME) -> str:
    """The Kubernetes node name of IM VM ``vm_id`` of ``group`` (``wn`` + ``3`` → ``wn-3``)."""
    return pattern.format(group=group).replace("#N#", vm_id)


class IMPowerManager:
    """``PowerManager`` for cloud groups of one IM infrastructure.

    ``client`` is an ``IMClient`` or a callable returning one per operation: a daemon with short-lived
    credentials (OIDC tokens) passes a factory that rebuilds the client when its auth entries change.
    """

    def __init__(
        self,
        client: IMClient | Callable[[], IMClient],
        infrastructure_id: str,
        *,
        hostname_pattern: str = WORKER_HOSTNAME,
        guard: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        """``guard`` is held around every change to the infrastructure: the deployment's one-writer lock
        when the daemon runs where deployer's CLI does (``deployer.adapters.state.locks``)."""
        self._client_for: Callable[[], IMClient] = (
            (lambda: client) if isinstance(client, IMClient) else client
        )
        self._guard = guard
        self._inf_id = infrastructure_id
        self._pattern = hostname_pattern
        # IM VM id -> what it is. A VM never changes system: entries stay valid while it lives.
        self._vm_cache: dict[str, _VM] = {}

    def power_on(self, group: NodeGroup, count: int, *, busy: Collection[str] = ()) -> list[PoweredOn]:
        if count <= 0:
            return []
        with self._guard():
            new_ids = self._client_for().add_vms(self._inf_id, node_id(group.name), count)
        log.info("IM added %d VM(s) to group %s: %s", len(new_ids), group.name, ", ".join(new_ids))
        return [PoweredOn(node_name_for(group.name, vm_id, self._pattern), vm_id) for vm_id in new_ids]

    def power_off(self, group: NodeGroup, nodes: Sequence[str]) -> None:
        client = self._client_for()
        existing = self._group_vm_ids(client, group)
        ids = [existing[name] for name in nodes if name in existing]
        gone = [name for name in nodes if name not in existing]
        if gone:
            log.info(
                "nodes %s of group %s have no VM any more: nothing to remove", ", ".join(gone), group.name
            )
        if not ids:
            return
        with self._guard():
            client.remove_vms(self._inf_id, ids)
        for vm_id in ids:
            self._vm_cache.pop(vm_id, None)
        log.info("IM removed VM(s) %s of group %s", ", ".join(ids), group.name)

    def nodes(self, group: NodeGroup) -> list[PoweredOn]:
        client = self._client_for()
        named = self._group_vm_ids(client, group)
        vms = self._vms(client)
        return sorted(
            (
                PoweredOn(name, vm_id, vms[vm_id].instance_id, vms[vm_id].addresses)
                for name, vm_id in named.items()
            ),
            key=lambda p: int(p.vm_id or 0),
        )

    def _group_vm_ids(self, client: IMClient, group: NodeGroup) -> dict[str, str]:
        """Node name -> IM VM id for every live VM of ``group``."""
        system = node_id(group.name)
        return {
            vm.hostname or node_name_for(group.name, vm_id, self._pattern): vm_id
            for vm_id, vm in self._vms(client).items()
            if vm.system == system
        }

    def _vms(self, client: IMClient) -> dict[str, _VM]:
        """Every live VM of the infrastructure with its system (TOSCA node) name; cached per VM id."""
        live = client.vm_ids(self._inf_id)
        for vm_id in list(self._vm_cache):
            if vm_id not in live:
                del self._vm_cache[vm_id]
        for vm_id in live:
            if vm_id not in self._vm_cache:
                self._vm_cache[vm_id] = _VM.of(client.vm_info(self._inf_id, vm_id))
        return {vm_id: self._vm_cache[vm_id] for vm_id in live}


@dataclass(frozen=True, slots=True)
class _VM:
    """One IM VM as the power manager needs it: its TOSCA system, hostname, cloud instance id, addresses.
    The addresses are read once; an IP the cloud assigns later is matched on a later daemon start."""

    system: str
    hostname: str | None
    instance_id: str | None
    addresses: tuple[str, ...]

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> _VM:
        addresses = tuple(
            str(value)
            for key, value in sorted(info.items())
            if key.startswith("net_interface.") and key.endswith(".ip") and value
        )
        instance_id = info.get("instance_id")
        return cls(
            str(info.get("id", "")), _hostname(info), str(instance_id) if instance_id else None, addresses
        )


def _hostname(info: Mapping[str, Any]) -> str | None:
    name = info.get("net_interface.0.dns_name")
    if isinstance(name, str) and name and "#N#" not in name:
        return name
    return None
