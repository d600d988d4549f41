"""Scale-up rules of ``plan()``: existing room first, then booting nodes, then new nodes, within limits."""

from __future__ import annotations

import functools

from deployer.core.elasticity import plan
from deployer.core.elasticity.model import (
    GroupKind,
    NodePhase,
    OwnerKind,
    Resources,
    Taint,
    Toleration,
)
from tests.core.builders import (
    make_edge_group,
    make_group,
    make_node,
    make_pod,
    make_record,
    make_state,
    plan_for,
    settings,
    snapshot,
)

NOW = 1_000.0


run = functools.partial(plan_for, now=NOW)


def ups(result):
    return {u.group: u.count for u in result.scale_ups}


def test_pending_pods_that_fit_existing_room_cause_no_scale_up():
    wn = make_group("wn")
    node = make_node("wn-1", wn)
    pending = [make_pod(f"p{i}", cpu=1000) for i in range(3)]
    result = run([node], [make_pod("busy", cpu=500, node="wn-1"), *pending], [wn])
    assert result.scale_ups == ()
    assert result.explanations["uid-p0"].startswith("fits on node wn-1")


def test_a_burst_becomes_one_batched_scale_up_per_group():
    wn = make_group("wn", max_size=10)
    pods = [make_pod(f"p{i}", cpu=1000) for i in range(10)]  # 4 per 4-core node
    result = run(pods=pods, groups=[wn])
    assert len(result.scale_ups) == 1
    up = result.scale_ups[0]
    assert (up.group, up.count) == ("wn", 3)
    assert sorted(up.pod_uids) == sorted(p.uid for p in pods)
    assert up.nodes == ()  # cloud nodes are named by the IM


def test_booting_nodes_absorb_pending_pods_before_new_ones():
    wn = make_group("wn")
    state = make_state(make_record("wn-9", "wn", NodePhase.POWERING_ON, since=NOW - 30))
    pods = [make_pod(f"p{i}", cpu=1000) for i in range(6)]
    result = run(pods=pods, groups=[wn], state=state)
    assert ups(result) == {"wn": 1}  # 4 fit on the booting node, 2 need one more
    booting = [uid for uid, why in result.explanations.items() if "wn-9" in why]
    assert len(booting) == 4


def test_registered_not_ready_node_without_record_counts_as_booting():
    wn = make_group("wn")
    node = make_node("wn-5", wn, ready=False, created_at=NOW - 60)
    result = run([node], [make_pod(cpu=1000)], [wn])
    assert result.scale_ups == ()
    assert "booting" in next(iter(result.explanations.values()))


def test_group_max_caps_growth_and_explains_the_wait():
    wn = make_group("wn", max_size=2)
    nodes = [make_node("wn-1", wn)]
    pods = [make_pod("hog", cpu=4000, node="wn-1")] + [make_pod(f"p{i}", cpu=4000) for i in range(3)]
    result = run(nodes, pods, [wn])
    assert ups(result) == {"wn": 1}
    waiting = [why for why in result.explanations.values() if why.startswith("waiting")]
    assert len(waiting) == 2 and all("at max size (2)" in why for why in waiting)
    assert result.unplaceable == ()


def test_cluster_wide_max_and_max_booting_cap_the_total():
    a, b = make_group("a", cost=0.1), make_group("b", cost=0.2)
    pods = [make_pod(f"p{i}", cpu=4000) for i in range(6)]
    assert sum(ups(run(pods=pods, groups=[a, b], max_nodes_total=4)).values()) == 4
    state = make_state(make_record("a-1", "a", NodePhase.POWERING_ON, since=NOW))
    capped = run(pods=pods, groups=[a, b], state=state, max_booting=3)
    assert sum(ups(capped).values()) == 2  # one is booting already, and it takes one pod
    assert any("max_booting (3)" in why for why in capped.explanations.values())


def test_group_in_backoff_falls_back_to_the_next_group():
    cheap, dear = make_group("cheap", cost=0.1), make_group("dear", cost=0.5)
    pods = [make_pod(cpu=1000)]
    assert ups(run(pods=pods, groups=[cheap, dear])) == {"cheap": 1}
    state = make_state(group_backoff_until={"cheap": NOW + 10})
    assert ups(run(pods=pods, groups=[cheap, dear], state=state)) == {"dear": 1}
    alone = run(pods=pods, groups=[cheap], state=state)
    assert alone.scale_ups == () and "backing off" in alone.explanations[pods[0].uid]


def test_scale_up_cooldown_blocks_only_that_group():
    wn = make_group("wn")
    state = make_state(last_scale_up={"wn": NOW - 5})
    result = run(pods=[make_pod(cpu=1000)], groups=[wn], state=state, scale_up_cooldown=60)
    assert result.scale_ups == ()
    assert "cooling down" in next(iter(result.explanations.values()))
    assert ups(run(pods=[make_pod(cpu=1000)], groups=[wn], state=state, scale_up_cooldown=3)) == {"wn": 1}


def test_edge_boards_before_cloud_and_the_boards_to_wake_are_named():
    cloud = make_group("cloud", cost=0.0, arch="arm64")
    edge = make_edge_group("pi", boards=3)
    nodes = [make_node("pi-1", edge)]  # pi-1 is on and full; pi-2 and pi-3 are off
    pods = [make_pod("full", cpu=4000, node="pi-1"), make_pod("a", cpu=3000), make_pod("b", cpu=3000)]
    result = run(nodes, pods, [cloud, edge])
    assert [(u.group, u.count, u.nodes) for u in result.scale_ups] == [("pi", 2, ("pi-2", "pi-3"))]


def test_constrained_pods_keep_the_only_group_that_fits_them():
    cloud = make_group("cloud")  # amd64
    edge = make_edge_group("pi", boards=1)  # arm64, preferred
    flexible = [make_pod(f"any{i}", cpu=1000) for i in range(4)]
    arm_only = [make_pod(f"arm{i}", cpu=1000, selector={"kubernetes.io/arch": "arm64"}) for i in range(4)]
    result = run(pods=flexible + arm_only, groups=[cloud, edge])
    by_group = {u.group: set(u.pod_uids) for u in result.scale_ups}
    assert by_group["pi"] == {p.uid for p in arm_only}
    assert by_group["cloud"] == {p.uid for p in flexible}


def test_unplaceable_pods_are_reported_and_never_scale_anything():
    wn = make_group("wn")
    too_big = make_pod("big", cpu=64_000)
    wrong_arch = make_pod("arm", selector={"kubernetes.io/arch": "arm64"})
    no_label = make_pod("ssd", selector={"disk": "ssd"})
    result = run(pods=[too_big, wrong_arch, no_label], groups=[wn])
    assert result.scale_ups == ()
    reasons = {u.pod_uid: u.reason for u in result.unplaceable}
    assert "cpu 64000m > 4000m" in reasons["uid-big"]
    assert "arch arm64" in reasons["uid-arm"]
    assert "nodeSelector disk=ssd" in reasons["uid-ssd"]
    assert result.explanations["uid-big"].startswith("unplaceable")


def test_a_pod_only_an_existing_unmanaged_node_can_hold_waits_instead_of_unplaceable():
    wn = make_group("wn")
    big = make_node("front", None, allocatable=Resources(32_000, 65_536, 0, 110))
    pods = [make_pod("hog", cpu=30_000, node="front"), make_pod("large", cpu=16_000)]
    result = run([big], pods, [wn])
    assert result.unplaceable == () and result.scale_ups == ()
    assert result.explanations["uid-large"].startswith("waiting")


def test_daemonset_and_mirror_pods_are_never_placed():
    wn = make_group("wn")
    pods = [make_pod(owner=OwnerKind.DAEMON_SET), make_pod(owner=OwnerKind.MIRROR)]
    result = run(pods=pods, groups=[wn])
    assert result.scale_ups == () and result.explanations == {}


def test_tainted_group_only_for_pods_that_tolerate_it():
    gpu = make_group("gpu", shape=Resources(8000, 32_768, 2, 110), taints=(Taint("gpu", "yes"),), priority=5)
    plain = make_group("plain")
    tolerant = make_pod("t", gpu=1, tolerations=(Toleration("gpu", "Exists"),))
    result = run(pods=[tolerant, make_pod("p")], groups=[gpu, plain])
    assert {u.group: u.pod_uids for u in result.scale_ups} == {"gpu": ("uid-t",), "plain": ("uid-p",)}


def test_groups_below_min_grow_to_min_and_pods_use_those_nodes():
    wn = make_group("wn", min_size=2)
    result = run(pods=[make_pod(cpu=1000)], groups=[wn])
    assert ups(result) == {"wn": 2}
    assert "below min size (0 < 2)" in result.scale_ups[0].reason


def test_unsynced_snapshot_decides_nothing():
    wn = make_group("wn")
    result = plan(snapshot((), [make_pod("p")], synced=False), [wn], make_state(), settings(), NOW)
    assert result.empty and result.state is None
    assert "not synced" in result.explanations["uid-p"]


def test_edge_board_out_of_attempts_is_not_woken():
    edge = make_edge_group("pi", boards=2)
    state = make_state(make_record("pi-1", "pi", NodePhase.FAILED, since=0, attempts=3))
    result = run(pods=[make_pod(cpu=1000), make_pod(cpu=3500)], groups=[edge], state=state)
    assert [(u.count, u.nodes) for u in result.scale_ups] == [(1, ("pi-2",))]
    waiting = [why for why in result.explanations.values() if why.startswith("waiting")]
    assert waiting and "no board to wake" in waiting[0] and "3 power-on attempts" in waiting[0]


def test_always_on_boards_are_uncordoned_instead_of_booted():
    edge = make_edge_group("pi", boards=2, kind=GroupKind.EDGE_ALWAYS_ON)
    nodes = [make_node("pi-1", edge, cordoned=True), make_node("pi-2", edge, cordoned=True)]
    off = make_state(*(make_record(n.name, "pi", NodePhase.OFF) for n in nodes))
    result = run(nodes, [make_pod(cpu=1000)], [edge], state=off)
    assert [(u.group, u.nodes) for u in result.scale_ups] == [("pi", ("pi-1",))]
    # Cordoned by an operator (no OFF record of ours): left alone.
    assert run(nodes, [make_pod(cpu=1000)], [edge]).scale_ups == ()


def test_min_spare_nodes_boots_an_empty_node_in_the_preferred_group():
    cloud, edge = make_group("cloud"), make_edge_group("pi", boards=2)
    result = run(groups=[cloud, edge], min_spare_nodes=1)
    assert [(u.group, u.count, u.nodes) for u in result.scale_ups] == [("pi", 1, ("pi-1",))]
    assert "keeping 1 spare nodes" in result.scale_ups[0].reason


def test_idle_or_empty_booting_nodes_already_count_as_spares():
    wn = make_group("wn")
    idle = make_state(make_record("wn-1", "wn", NodePhase.IDLE, since=NOW - 10))
    assert run([make_node("wn-1", wn)], [], [wn], idle, min_spare_nodes=1).scale_ups == ()
    booting = make_state(make_record("wn-2", "wn", NodePhase.POWERING_ON, since=NOW - 10))
    assert run(groups=[wn], state=booting, min_spare_nodes=1).scale_ups == ()
    # A booting node that a pending pod will take is not spare: one more boots, in the same ScaleUp batch.
    taken = run(pods=[make_pod(cpu=1000)], groups=[wn], state=booting, min_spare_nodes=1)
    assert [(u.group, u.count) for u in taken.scale_ups] == [("wn", 1)]
