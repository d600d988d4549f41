"""Simulated kubelets that follow the local IM's Dummy VMs of one deployment.

Called by the sandbox server (``deployer.sandbox.server``) on every tick. A VM of a worker group that
appears in the IM boots: its node registers NotReady at 80% of the group's ``boot_seconds`` and turns
Ready at 100%, with the group's labels (plus the daemon's group label and the architecture), taints and
size (the VM's CPUs and memory as capacity, less the system reservation the planner assumes as
allocatable). When the VM leaves the IM, its node goes too (the daemon normally deletes it first). The
VMs are read with the daemon's own ``IMPowerManager``, so node names are the ones the daemon expects.
Every VM's life (first seen, Ready, gone) is kept for the demo's node-hours.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from deployer.adapters.power.port import PoweredOn
from deployer.core.elasticity.from_spec import SYSTEM_RESERVED, worker_group
from deployer.core.elasticity.model import NodeGroup
from deployer.core.elasticity.scheduling import GROUP_LABEL
from deployer.core.spec import ClusterSpec, WorkerGroup
from deployer.sandbox.api import FakeKubeAPI

log = logging.getLogger(__name__)

REGISTER_AT = 0.8  # of boot_seconds: the kubelet registers its node (NotReady) before it is Ready
FRONT_NODE = "front"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"


class VMLister(Protocol):
    """What the kubelets need from the IM: the live VMs of a group (``IMPowerManager.nodes``)."""

    def nodes(self, group: NodeGroup) -> list[PoweredOn]: ...


@dataclass
class VMLife:
    node: str
    group: str
    vm_id: str | None
    seen_at: float
    registered_at: float | None = None
    ready_at: float | None = None
    gone_at: float | None = None


class DummyKubelets:
    def __init__(self, api: FakeKubeAPI, spec: ClusterSpec, vms: VMLister) -> None:
        self.api = api
        self._vms = vms
        self._groups = {group.name: group for group in spec.worker_groups}
        self.lives: dict[str, VMLife] = {}  # node name -> its VM's life, gone ones included

    def sync(self) -> None:
        """One look at the IM: new VMs start booting, the nodes of gone VMs are removed."""
        now = self.api.clock()
        live: dict[str, PoweredOn] = {}
        for group in self._groups.values():
            for vm in self._vms.nodes(worker_group(group)):
                live[vm.name] = vm
                if vm.name not in self.lives or self.lives[vm.name].gone_at is not None:
                    log.info("VM %s of group %s appeared: node %s boots", vm.vm_id, group.name, vm.name)
                    self.lives[vm.name] = VMLife(vm.name, group.name, vm.vm_id, now)
        for name, life in self.lives.items():
            if life.gone_at is not None:
                continue
            if name not in live:
                life.gone_at = now
                if self.api.get("Node", "", name) is not None:
                    self.api.delete("Node", "", name)
                log.info("VM of node %s is gone", name)

    def advance(self) -> None:
        """The booting VMs' kubelets: register the node (NotReady), later make it Ready."""
        now = self.api.clock()
        for life in self.lives.values():
            if life.gone_at is not None or life.ready_at is not None:
                continue
            group = self._groups[life.group]
            age = now - life.seen_at
            if life.registered_at is None and age >= REGISTER_AT * group.boot_seconds:
                self.api.add_node(life.node, ready=False, **node_fields(group))
                life.registered_at = now
            elif life.registered_at is not None and age >= group.boot_seconds:
                self.api.set_node_ready(life.node, True)
                life.ready_at = now

    def dump(self) -> list[dict[str, Any]]:
        return [asdict(life) for life in self.lives.values()]

    def restore(self, lives: Sequence[dict[str, Any]]) -> None:
        self.lives = {life["node"]: VMLife(**life) for life in lives}


def register_front(api: FakeKubeAPI) -> None:
    """The front end runs the control plane: a tainted node that takes no workload."""
    if api.get("Node", "", FRONT_NODE) is None:
        api.add_node(
            FRONT_NODE,
            labels={CONTROL_PLANE_ROLE: ""},
            taints=[{"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"}],
        )


def node_fields(group: WorkerGroup) -> dict[str, Any]:
    """``FakeKubeAPI.add_node`` arguments for a node of ``group``."""
    labels = {**group.labels, GROUP_LABEL: group.name, "kubernetes.io/arch": group.arch}
    return {
        "cpu": f"{group.cpus * 1000 - SYSTEM_RESERVED.cpu_m}m",
        "memory": f"{group.memory - SYSTEM_RESERVED.memory_mib}Mi",
        "gpu": group.gpus,
        "labels": labels,
        "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in group.taints] or None,
    }


def node_hours(lives: Sequence[VMLife], now: float) -> float:
    """Hours the VMs were up (first seen to gone, or ``now``), summed."""
    return sum(((life.gone_at or now) - life.seen_at) for life in lives) / 3600
