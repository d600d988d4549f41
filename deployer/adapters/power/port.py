"""The power-manager contract shared by the IM, edge and fake implementations (called by the daemon actuator).

Each method raises a ``deployer.errors`` error on failure: ``TransientError`` when a retry later may work
(IM 5xx, timeouts, a board that did not answer), another ``RemoteError`` otherwise. Removing a node that is
already gone is success (idempotent), so the actuator can safely repeat an interrupted power-off.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from deployer.core.elasticity.model import NodeGroup


@dataclass(frozen=True, slots=True)
class PoweredOn:
    """A node that a power-on call started: its future Kubernetes node name and, for VMs, the IM VM id, the
    cloud's instance id (what a Node's ``spec.providerID`` ends with) and the VM's addresses, so that the
    daemon can recognise its Node even when the kubelet registered under another name."""

    name: str
    vm_id: str | None = None
    instance_id: str | None = None
    addresses: tuple[str, ...] = ()


@runtime_checkable
class PowerManager(Protocol):
    def power_on(self, group: NodeGroup, count: int, *, busy: Collection[str] = ()) -> list[PoweredOn]:
        """Required. Start ``count`` new nodes of ``group`` in as few remote calls as the backend allows.

        ``busy`` names the nodes the daemon already knows to be on or booting; owned boards (edge) pick from
        the group's hosts outside that set. May return fewer nodes than asked when the group has no more
        boards; never more.
        """
        ...

    def power_off(self, group: NodeGroup, nodes: Sequence[str]) -> None:
        """Required. Stop (VMs: destroy) these nodes of ``group``. Unknown or gone nodes are ignored."""
        ...

    def nodes(self, group: NodeGroup) -> list[PoweredOn]:
        """Required. The nodes the backend holds for ``group`` right now (VMs that exist; for owned boards,
        every board). May lag behind a power-on that is still in flight; the daemon uses it to adopt nodes
        that a crashed run started but never recorded."""
        ...
