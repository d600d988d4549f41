"""Node templates learnt from Ready nodes: allocatable less per-node pods, the least over the group's nodes,
for groups found by label or by the daemon's records; a GPU count not advertised yet keeps the spec's."""

from __future__ import annotations

from deployer.core.elasticity.model import OwnerKind, Resources, Snapshot
from deployer.core.elasticity.templates import observed_shapes, with_shapes
from tests.core.builders import make_group, make_node, make_pod


def test_a_group_offers_what_its_smallest_ready_node_leaves_after_its_daemonsets() -> None:
    wn, gpu = make_group("wn"), make_group("gpu", shape=Resources(4000, 8192, 1, 110))
    nodes = (
        make_node("wn-1", wn, allocatable=Resources(3500, 7000, 0, 110)),
        make_node("wn-2", wn, allocatable=Resources(3800, 6500, 0, 110)),
        make_node("wn-3", wn, allocatable=Resources(100, 100, 0, 110), ready=False),  # not Ready: ignored
        make_node("odd-name", None, allocatable=Resources(3600, 7500, 0, 110)),  # ours by record
        make_node("gpu-1", gpu, allocatable=Resources(3900, 8000, 0, 110)),  # device plugin not up yet
    )
    pods = (
        make_pod("agent-1", node="wn-1", cpu=200, mem=300, owner=OwnerKind.DAEMON_SET),
        make_pod("work-1", node="wn-1", cpu=1000, mem=1000),  # workload: not part of the template
        make_pod("agent-2", node="wn-2", cpu=200, mem=300, owner=OwnerKind.DAEMON_SET),
    )
    shapes = observed_shapes(Snapshot(nodes=nodes, pods=pods), [wn, gpu], {"odd-name": "wn"})
    assert shapes["wn"] == Resources(cpu_m=3300, memory_mib=6200, gpu=0, pods=109)
    learnt = {g.name: g.shape for g in with_shapes([wn, gpu, make_group("spare")], shapes)}
    assert learnt == {"wn": shapes["wn"], "gpu": Resources(3900, 8000, 1, 110), "spare": make_group().shape}
