"""The planner's inputs from a cluster spec: node groups from ``worker_groups``/``edge_groups`` and settings
from the ``elasticity`` section. Called by the daemon, ``daemon explain`` and the simulator.

A group's shape is what pods can request on one of its nodes, so the VM size less a small reservation
for the kubelet, the system and the per-node DaemonSets (kube-proxy, the CNI): a pod asking for the whole
VM would never be scheduled, and the planner says so instead of booting nodes for it. Callers that model
ideal nodes (a simulator comparing against a lower bound) pass ``reserved=Resources()``.
"""

from __future__ import annotations

from deployer.core.elasticity.model import (
    ElasticitySettings,
    GroupKind,
    NodeGroup,
    Resources,
    Taint,
)
from deployer.core.spec import ClusterSpec, EdgeGroup, EdgeHost, WorkerGroup
from deployer.core.spec import Taint as SpecTaint

SYSTEM_RESERVED = Resources(cpu_m=100, memory_mib=256)
MAX_PODS = 110  # the kubelet's default --max-pods


def _shape(cpus: int, memory_mib: int, gpus: int, reserved: Resources) -> Resources:
    return Resources(
        cpu_m=max(cpus * 1000 - reserved.cpu_m, 0),
        memory_mib=max(memory_mib - reserved.memory_mib, 0),
        gpu=gpus,
        pods=MAX_PODS,
    )


def _taints(taints: tuple[SpecTaint, ...]) -> tuple[Taint, ...]:
    return tuple(Taint(t.key, t.value, t.effect) for t in taints)


def edge_node_name(host: EdgeHost) -> str:
    """The Kubernetes node name of a board: its ``name``, else its address (a hostname, usually)."""
    return host.name or host.address


def worker_group(group: WorkerGroup, reserved: Resources = SYSTEM_RESERVED) -> NodeGroup:
    return NodeGroup(
        name=group.name,
        min_size=group.min,
        max_size=group.max,
        shape=_shape(group.cpus, group.memory, group.gpus, reserved),
        kind=GroupKind.CLOUD,
        arch=group.arch,
        labels=dict(group.labels),
        taints=_taints(group.taints),
        cost_per_hour=group.cost_per_hour,
        priority=group.priority,
        boot_seconds=group.boot_seconds,
    )


def edge_group(group: EdgeGroup, reserved: Resources = SYSTEM_RESERVED) -> NodeGroup:
    return NodeGroup(
        name=group.name,
        min_size=group.min,
        max_size=len(group.hosts),
        shape=_shape(group.cpus, group.memory, 0, reserved),
        kind=GroupKind.EDGE if group.power == "wol" else GroupKind.EDGE_ALWAYS_ON,
        arch=group.arch,
        labels=dict(group.labels),
        taints=_taints(group.taints),
        cost_per_hour=0.0,  # owned boards: no hourly price
        priority=group.priority,
        boot_seconds=group.boot_seconds,
        hosts=tuple(edge_node_name(h) for h in group.hosts),
    )


def groups_from_spec(spec: ClusterSpec, reserved: Resources = SYSTEM_RESERVED) -> tuple[NodeGroup, ...]:
    """Every scalable group of the spec, cloud worker groups first, in spec order."""
    cloud = tuple(worker_group(g, reserved) for g in spec.worker_groups)
    return cloud + tuple(edge_group(g, reserved) for g in spec.edge_groups)


def settings_from_spec(spec: ClusterSpec) -> ElasticitySettings:
    section = spec.elasticity
    return ElasticitySettings(
        idle_time=section.idle_time,
        idle_policy=section.idle_policy,
        wait_for_room=section.wait_for_room,
        max_booting=section.max_booting,
        max_nodes_total=section.max_nodes,
        provision_timeout=section.provision_timeout,
        min_spare_nodes=section.min_spare_nodes,
        scale_down_underutilized=section.scale_down_underutilized,
        utilization_threshold=section.utilization_threshold,
        expanders=tuple(section.expanders),
    )
