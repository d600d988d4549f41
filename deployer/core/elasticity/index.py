"""One pass over a snapshot: nodes by name, what is bound to each node, and the pods waiting for one.

Built once per ``plan()`` so that the life cycle, scale-up and scale-down never rescan 10,000 pods.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.core.elasticity.model import Node, Pod, Resources, Snapshot
from deployer.core.elasticity.scheduling import is_finished, is_pending, is_workload


@dataclass(slots=True)
class ClusterIndex:
    nodes: dict[str, Node]
    used: dict[str, Resources]  # requests of every unfinished pod bound to the node (DaemonSets included)
    workload: dict[str, list[Pod]]  # unfinished non-DaemonSet, non-mirror pods bound to the node
    pending: list[Pod]  # unbound workload pods waiting for a node

    def free(self, node: Node) -> Resources:
        used = self.used.get(node.name)
        return node.allocatable - used if used is not None else node.allocatable

    def is_idle(self, name: str) -> bool:
        return not self.workload.get(name)

    def utilization(self, node: Node) -> float:
        """The largest share of cpu, memory or gpu that workload pods request on the node (0..1+)."""
        cpu = mem = gpu = 0
        for pod in self.workload.get(node.name, ()):
            cpu += pod.requests.cpu_m
            mem += pod.requests.memory_mib
            gpu += pod.requests.gpu
        shares = [
            used / total
            for used, total in (
                (cpu, node.allocatable.cpu_m),
                (mem, node.allocatable.memory_mib),
                (gpu, node.allocatable.gpu),
            )
            if total > 0
        ]
        return max(shares, default=0.0)


def index_snapshot(snapshot: Snapshot) -> ClusterIndex:
    nodes = {node.name: node for node in snapshot.nodes}
    sums: dict[str, list[int]] = {}
    workload: dict[str, list[Pod]] = {}
    pending: list[Pod] = []
    for pod in snapshot.pods:
        if pod.node_name is None:
            if is_pending(pod):
                pending.append(pod)
            continue
        if is_finished(pod):
            continue
        acc = sums.get(pod.node_name)
        if acc is None:
            acc = sums[pod.node_name] = [0, 0, 0, 0]
        r = pod.requests
        acc[0] += r.cpu_m
        acc[1] += r.memory_mib
        acc[2] += r.gpu
        acc[3] += r.pods
        if is_workload(pod):
            workload.setdefault(pod.node_name, []).append(pod)
    used = {name: Resources(*acc) for name, acc in sums.items()}
    return ClusterIndex(nodes, used, workload, pending)
