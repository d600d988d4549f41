"""One pass over a snapshot: nodes by name, what is bound to each node, and the pods waiting for one.

Built once per ``plan()`` so that the life cycle, scale-up and scale-down never rescan 10,000 pods.
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.core.elasticity.model import Node, Pod, Resources, Snapshot
from deployer.core.elasticity.scheduling import FINISHED_PHASES, PER_NODE_KINDS


@dataclass(slots=True)
class ClusterIndex:
    nodes: dict[str, Node]
    # Requests of every unfinished pod bound to a node (DaemonSets included): cpu, memory, gpu, pods.
    # Plain sums, turned into Resources only for the nodes a round looks at.
    sums: dict[str, list[int]]
    workload: dict[str, list[Pod]]  # unfinished non-DaemonSet, non-mirror pods bound to the node
    pending: list[Pod]  # unbound workload pods waiting for a node

    def used(self, name: str) -> Resources | None:
        acc = self.sums.get(name)
        return Resources(*acc) if acc is not None else None

    def free(self, node: Node) -> Resources:
        used = self.used(node.name)
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
    # The checks of scheduling.is_pending/is_finished/is_workload, inlined: this loop sees every pod.
    for pod in snapshot.pods:
        node_name = pod.node_name
        if node_name is None:
            if pod.phase == "Pending" and pod.owner_kind not in PER_NODE_KINDS:
                pending.append(pod)
            continue
        if pod.phase in FINISHED_PHASES:
            continue
        acc = sums.get(node_name)
        if acc is None:
            acc = sums[node_name] = [0, 0, 0, 0]
        r = pod.requests
        acc[0] += r.cpu_m
        acc[1] += r.memory_mib
        acc[2] += r.gpu
        acc[3] += r.pods
        if pod.owner_kind not in PER_NODE_KINDS:
            workload.setdefault(node_name, []).append(pod)
    return ClusterIndex(nodes, sums, workload, pending)
