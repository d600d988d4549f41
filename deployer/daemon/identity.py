"""Which Kubernetes Node is which VM, by evidence a kubelet registering under another name cannot fool.

Called by the reconciler every round with the VMs a power manager reports and the raw Nodes of the watch
cache. A VM is matched to a Node, strongest evidence first, by:

1. the label the join sets, ``deployer.io/vm-id=<IM VM id>``;
2. ``spec.providerID``, whose last segment is the cloud's instance id (``openstack:///<uuid>``);
3. the name the VM was created with (``<group>-<IM VM id>``, or the hostname the IM reports);
4. the VM's address, when exactly one VM and exactly one Node have it (all Dummy VMs share one address,
   and a NAT-ed cloud may reuse them: an ambiguous address proves nothing).

A VM that nothing matches is an orphan (it has no Node, yet); a Node is claimed by at most one VM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deployer.adapters.power.port import PoweredOn

VM_ID_LABEL = "deployer.io/vm-id"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """What a Node object says about the machine under it."""

    name: str
    vm_id: str | None = None  # the deployer.io/vm-id label
    provider_id: str | None = None
    addresses: tuple[str, ...] = ()  # InternalIP and ExternalIP


def node_identity(node: Any) -> NodeIdentity:
    """The identity of a raw ``V1Node`` (from the watch cache)."""
    meta, spec, status = node.metadata, node.spec, node.status
    addresses = tuple(
        a.address
        for a in (status.addresses if status is not None else None) or ()
        if a.type in ("InternalIP", "ExternalIP")
    )
    return NodeIdentity(
        name=meta.name,
        vm_id=(meta.labels or {}).get(VM_ID_LABEL),
        provider_id=spec.provider_id if spec is not None else None,
        addresses=addresses,
    )


def _instance_of(provider_id: str | None) -> str | None:
    if not provider_id:
        return None
    return provider_id.rstrip("/").rsplit("/", 1)[-1] or None


def match_vms(vms: Sequence[PoweredOn], nodes: Sequence[NodeIdentity]) -> dict[str, str]:
    """VM name (as the power manager names it) -> the name of its Node, for every VM that has one."""
    matched: dict[str, str] = {}
    taken: set[str] = set()

    def claim(vm: PoweredOn, node: NodeIdentity | None) -> None:
        if node is not None and vm.name not in matched and node.name not in taken:
            matched[vm.name] = node.name
            taken.add(node.name)

    by_label = {n.vm_id: n for n in nodes if n.vm_id}
    by_instance = {i: n for n in nodes if (i := _instance_of(n.provider_id))}
    by_name = {n.name: n for n in nodes}
    for vm in vms:
        claim(vm, by_label.get(vm.vm_id or ""))
    for vm in vms:
        claim(vm, by_instance.get(vm.instance_id or ""))
    for vm in vms:
        claim(vm, by_name.get(vm.name))
    vms_at: dict[str, list[PoweredOn]] = {}
    for vm in vms:
        for address in set(vm.addresses):
            vms_at.setdefault(address, []).append(vm)
    nodes_at: dict[str, list[NodeIdentity]] = {}
    for node in nodes:
        for address in set(node.addresses):
            nodes_at.setdefault(address, []).append(node)
    for address, at in sorted(vms_at.items()):
        owners = nodes_at.get(address, [])
        if len(at) == 1 and len(owners) == 1:
            claim(at[0], owners[0])
    return matched
