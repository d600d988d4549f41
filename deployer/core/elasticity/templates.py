"""Node templates from reality: what a NEW node of a group will offer, learnt from the group's Ready nodes.

A spec's size is not what pods get: the kubelet's reservations, the eviction threshold and every DaemonSet
(kube-proxy, the CNI, log shippers) take their share, and only a registered node tells how much. As the
Cluster Autoscaler does, once a group has a Ready node, its next nodes are assumed to offer that node's
allocatable less the requests of its per-node (DaemonSet and static) pods; with several Ready nodes, the
least of each resource. Without this, a pod sized between the real and the assumed room boots a node per
round up to the group's max, and none of them can run it.

Pure: the daemon calls ``observed_shapes`` each round, remembers the result (a group whose nodes are all
gone keeps its last template), and passes ``with_shapes(groups, ...)`` to ``plan()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from deployer.core.elasticity.model import NodeGroup, Resources, Snapshot
from deployer.core.elasticity.scheduling import FINISHED_PHASES, PER_NODE_KINDS


def observed_shapes(
    snapshot: Snapshot, groups: Sequence[NodeGroup], members: Mapping[str, str]
) -> dict[str, Resources]:
    """Group name -> the room a new node of that group offers, for every group with a Ready node.

    A node belongs to a group by its group label or, for a node registered without one, by ``members``
    (node name -> group, from the daemon's records)."""
    per_node: dict[str, Resources] = {}
    for pod in snapshot.pods:
        if (
            pod.node_name is not None
            and pod.owner_kind in PER_NODE_KINDS
            and pod.phase not in FINISHED_PHASES
        ):
            per_node[pod.node_name] = per_node.get(pod.node_name, Resources()) + pod.requests
    wanted = {group.name for group in groups}
    shapes: dict[str, Resources] = {}
    for node in snapshot.nodes:
        group = node.group or members.get(node.name)
        if group not in wanted or not node.ready:
            continue
        room = node.allocatable - per_node.get(node.name, Resources())
        seen = shapes.get(group)
        shapes[group] = room if seen is None else _least(seen, room)
    return shapes


def with_shapes(groups: Sequence[NodeGroup], shapes: Mapping[str, Resources]) -> tuple[NodeGroup, ...]:
    """``groups`` with each learnt shape in place of the spec's. A node that shows no GPU in a group that
    has them is Ready before its device plugin has advertised them: the spec's count stands."""
    learnt = []
    for group in groups:
        shape = shapes.get(group.name)
        if shape is not None and shape.gpu == 0 and group.shape.gpu > 0:
            shape = replace(shape, gpu=group.shape.gpu)
        learnt.append(group if shape is None else replace(group, shape=shape))
    return tuple(learnt)


def _least(a: Resources, b: Resources) -> Resources:
    return Resources(
        min(a.cpu_m, b.cpu_m), min(a.memory_mib, b.memory_mib), min(a.gpu, b.gpu), min(a.pods, b.pods)
    )
