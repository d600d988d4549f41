"""Scale-down rules of ``plan()``: idle and underutilised nodes go, protected ones never do."""

from __future__ import annotations

import pytest

from deployer.core.elasticity import plan
from deployer.core.elasticity.model import DisruptionBudget, NodePhase, OwnerKind
from deployer.core.elasticity.scheduling import SAFE_TO_EVICT, SCALE_DOWN_DISABLED
from tests.core.builders import (
    make_edge_group,
    make_group,
    make_node,
    make_pod,
    make_record,
    make_state,
    settings,
    snapshot,
)

NOW = 10_000.0
IDLE = 300.0


def idle_cluster(group, count, idle_for=IDLE, **node_kwargs):
    nodes = [make_node(f"{group.name}-{i}", group, **node_kwargs) for i in range(1, count + 1)]
    records = [make_record(n.name, group.name, NodePhase.IDLE, since=NOW - idle_for) for n in nodes]
    return nodes, records


def run(nodes, pods, groups, records=(), budgets=(), state_kwargs=None, **overrides):
    state = make_state(*records, **(state_kwargs or {}))
    snap = snapshot(nodes, pods, budgets=tuple(budgets))
    return plan(snap, groups, state, settings(idle_time=IDLE, **overrides), NOW)


def removed(result):
    return {name for down in result.scale_downs for name in down.nodes}


def test_nodes_idle_for_idle_time_go_in_one_scale_down_per_group():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 3)
    result = run(nodes, [], [wn], records)
    assert [(d.group, d.nodes) for d in result.scale_downs] == [("wn", ("wn-1", "wn-2", "wn-3"))]
    assert "idle for 300s" in result.scale_downs[0].reason


def test_nodes_idle_for_less_than_idle_time_stay():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 2, idle_for=IDLE - 1)
    assert run(nodes, [], [wn], records).scale_downs == ()


def test_a_node_without_record_is_adopted_idle_from_now():
    wn = make_group("wn")
    nodes, _ = idle_cluster(wn, 1)
    result = run(nodes, [], [wn])
    assert result.scale_downs == ()
    assert result.state.records["wn-1"].idle_since == NOW


def test_daemonset_and_mirror_pods_do_not_keep_a_node_busy():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 1)
    pods = [make_pod(node="wn-1", owner=OwnerKind.DAEMON_SET), make_pod(node="wn-1", owner=OwnerKind.MIRROR)]
    assert removed(run(nodes, pods, [wn], records)) == {"wn-1"}


def test_finished_pods_do_not_keep_a_node_busy():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 1)
    done = make_pod(node="wn-1", owner=OwnerKind.JOB, phase="Succeeded")
    assert removed(run(nodes, [done], [wn], records)) == {"wn-1"}


def test_groups_never_go_below_min():
    wn = make_group("wn", min_size=2)
    nodes, records = idle_cluster(wn, 3)
    result = run(nodes, [], [wn], records)
    assert len(removed(result)) == 1
    assert sum("at min size" in why for why in result.kept_nodes.values()) == 2


def test_scale_down_disabled_annotation_protects_the_node():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 1, annotations={SCALE_DOWN_DISABLED: "true"})
    result = run(nodes, [], [wn], records)
    assert result.scale_downs == ()
    assert SCALE_DOWN_DISABLED in result.kept_nodes["wn-1"]


def test_min_spare_nodes_keeps_the_cheapest_idle_nodes():
    cloud = make_group("cloud", cost=0.5)
    edge = make_edge_group("pi", boards=2)
    cloud_nodes, cloud_records = idle_cluster(cloud, 2)
    edge_nodes, edge_records = idle_cluster(edge, 2)
    result = run(cloud_nodes + edge_nodes, [], [cloud, edge], cloud_records + edge_records, min_spare_nodes=2)
    assert removed(result) == {"cloud-1", "cloud-2"}


def test_an_idle_node_that_pending_pods_fit_on_stays():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 2)
    result = run(nodes, [make_pod("waiting", cpu=1000)], [wn], records)
    assert len(removed(result)) == 1
    assert "pending pods fit on it" in result.kept_nodes.values()


def test_no_scale_down_while_the_group_grew_recently():
    wn = make_group("wn")
    nodes, records = idle_cluster(wn, 1)
    recent = {"last_scale_up": {"wn": NOW - 10}}
    assert run(nodes, [], [wn], records, state_kwargs=recent, scale_down_cooldown=60).scale_downs == ()
    assert removed(run(nodes, [], [wn], records, state_kwargs=recent, scale_down_cooldown=5)) == {"wn-1"}


def test_an_unfinished_drain_is_sent_again():
    wn = make_group("wn")
    node = make_node("wn-1", wn, cordoned=True)
    record = make_record("wn-1", "wn", NodePhase.DRAINING, since=NOW - 5)
    result = run([node], [make_pod(node="wn-1")], [wn], [record])
    assert removed(result) == {"wn-1"} and "resuming its drain" in result.scale_downs[0].reason


def test_a_power_off_is_retried_only_after_the_power_off_timeout():
    wn = make_group("wn")
    node = make_node("wn-1", wn, cordoned=True)
    fresh = make_record("wn-1", "wn", NodePhase.POWERING_OFF, since=NOW - 10)
    assert run([node], [], [wn], [fresh]).scale_downs == ()
    stale = make_record("wn-1", "wn", NodePhase.POWERING_OFF, since=NOW - 400)
    assert removed(run([node], [], [wn], [stale])) == {"wn-1"}


# --- underutilised nodes --------------------------------------------------------------------------


def busy_pair(group, pod_kwargs):
    """wn-1 is underutilised with one pod (built from pod_kwargs); wn-2 is busy but has room for it."""
    nodes = [make_node("wn-1", group), make_node("wn-2", group)]
    pods = [make_pod("mover", cpu=1000, node="wn-1", **pod_kwargs), make_pod("stay", cpu=2500, node="wn-2")]
    records = [
        make_record("wn-1", group.name, NodePhase.USED, since=0, underutilized_since=NOW - IDLE),
        make_record("wn-2", group.name, NodePhase.USED, since=0),
    ]
    return nodes, pods, records


def test_underutilised_node_with_movable_pods_goes_when_enabled():
    wn = make_group("wn")
    nodes, pods, records = busy_pair(wn, {})
    assert run(nodes, pods, [wn], records).scale_downs == ()  # disabled by default
    result = run(nodes, pods, [wn], records, scale_down_underutilized=True)
    assert removed(result) == {"wn-1"}
    assert "under 50% utilised" in result.scale_downs[0].reason


@pytest.mark.parametrize(
    ("pod_kwargs", "why"),
    [
        ({"owner": OwnerKind.JOB}, "job pod default/mover has not finished"),
        ({"owner": OwnerKind.BARE}, "bare pod default/mover would not be recreated"),
        ({"annotations": {SAFE_TO_EVICT: "false"}}, f"{SAFE_TO_EVICT}=false"),
        ({"cpu": 3000}, None),  # 75% used: not underutilised at all
    ],
)
def test_underutilised_node_with_a_protected_pod_stays(pod_kwargs, why):
    wn = make_group("wn")
    nodes, pods, records = busy_pair(wn, {k: v for k, v in pod_kwargs.items() if k != "cpu"})
    if "cpu" in pod_kwargs:
        pods[0] = make_pod("mover", cpu=pod_kwargs["cpu"], node="wn-1")
        records[0] = make_record("wn-1", "wn", NodePhase.USED, since=0, underutilized_since=NOW - IDLE)
    result = run(nodes, pods, [wn], records, scale_down_underutilized=True)
    assert result.scale_downs == ()
    if why is not None:
        assert why in result.kept_nodes["wn-1"]


def test_safe_to_evict_true_lets_a_job_pod_move():
    wn = make_group("wn")
    nodes, pods, records = busy_pair(wn, {"owner": OwnerKind.JOB, "annotations": {SAFE_TO_EVICT: "true"}})
    assert removed(run(nodes, pods, [wn], records, scale_down_underutilized=True)) == {"wn-1"}


def test_underutilised_node_whose_pods_fit_nowhere_stays():
    wn = make_group("wn")
    nodes, pods, records = busy_pair(wn, {})
    pods[1] = make_pod("stay", cpu=3500, node="wn-2")  # no room left on wn-2 for a 1000m pod
    result = run(nodes, pods, [wn], records, scale_down_underutilized=True)
    assert result.scale_downs == ()
    assert result.kept_nodes["wn-1"] == "its pods do not fit on the other nodes"


def test_disruption_budgets_limit_evictions_across_nodes():
    wn = make_group("wn")
    nodes = [make_node(f"wn-{i}", wn) for i in range(1, 4)]
    # 55% used each: neither web node has room for the other's pod, both fit on wn-3.
    pods = [make_pod(f"web{i}", cpu=2200, node=f"wn-{i}", labels={"app": "web"}) for i in (1, 2)]
    records = [make_record(f"wn-{i}", "wn", NodePhase.USED, since=0, underutilized_since=0) for i in (1, 2)]
    records.append(make_record("wn-3", "wn", NodePhase.USED, since=0))
    pods.append(make_pod("anchor", cpu=100, node="wn-3"))
    budget = [DisruptionBudget("default", {"app": "web"}, disruptions_allowed=1)]
    result = run(nodes, pods, [wn], records, budget, scale_down_underutilized=True, utilization_threshold=0.6)
    assert len(removed(result)) == 1
    assert any("PodDisruptionBudget" in why for why in result.kept_nodes.values())
    blocked = [DisruptionBudget("default", {"app": "web"}, disruptions_allowed=0)]
    blocked_result = run(
        nodes, pods, [wn], records, blocked, scale_down_underutilized=True, utilization_threshold=0.6
    )
    assert blocked_result.scale_downs == ()


def test_a_node_that_receives_moved_pods_is_not_removed_in_the_same_round():
    wn = make_group("wn")
    nodes = [make_node("wn-1", wn), make_node("wn-2", wn)]
    pods = [make_pod("a", cpu=1000, node="wn-1"), make_pod("b", cpu=1000, node="wn-2")]
    records = [make_record(n.name, "wn", NodePhase.USED, since=0, underutilized_since=0) for n in nodes]
    assert len(removed(run(nodes, pods, [wn], records, scale_down_underutilized=True))) == 1


def test_expensive_nodes_are_removed_before_cheap_ones_when_min_limits():
    cheap, dear = make_group("cheap", cost=0.1), make_group("dear", cost=0.9)
    n1, r1 = idle_cluster(cheap, 1)
    n2, r2 = idle_cluster(dear, 1)
    assert removed(run(n1 + n2, [], [cheap, dear], r1 + r2, min_spare_nodes=1)) == {"dear-1"}


def test_a_failed_move_gives_back_the_room_it_tried():
    wn = make_group("wn")
    nodes = [make_node(f"wn-{i}", wn) for i in range(1, 5)]
    pods = [
        make_pod("y", cpu=2500, node="wn-1"),  # wn-1 cannot empty: y fits on wn-2, then x fits nowhere
        make_pod("x", cpu=1300, node="wn-1"),
        make_pod("z", cpu=1000, node="wn-2"),
        make_pod("anchor", cpu=3000, node="wn-3"),
        make_pod("w", cpu=2800, node="wn-4"),  # fits only where y was tried: on wn-2
    ]
    records = [
        make_record("wn-1", "wn", NodePhase.USED, since=0, underutilized_since=0),
        make_record("wn-2", "wn", NodePhase.USED, since=0),
        make_record("wn-3", "wn", NodePhase.USED, since=0),
        make_record("wn-4", "wn", NodePhase.USED, since=0, underutilized_since=0),
    ]
    result = run(nodes, pods, [wn], records, scale_down_underutilized=True, utilization_threshold=0.96)
    assert removed(result) == {"wn-4"}
    assert result.kept_nodes["wn-1"] == "its pods do not fit on the other nodes"


def test_max_drains_per_round_limits_non_empty_nodes_only():
    wn = make_group("wn")
    nodes = [make_node(f"wn-{i}", wn) for i in range(1, 6)]
    pods = [make_pod(f"p{i}", cpu=100, node=f"wn-{i}") for i in (1, 2, 3)]
    records = [
        make_record(f"wn-{i}", "wn", NodePhase.USED, since=0, underutilized_since=0) for i in (1, 2, 3)
    ]
    records += [make_record(f"wn-{i}", "wn", NodePhase.IDLE, since=0) for i in (4, 5)]
    result = run(nodes, pods, [wn], records, scale_down_underutilized=True, max_drains_per_round=1)
    assert removed(result) == {"wn-1", "wn-4", "wn-5"}  # wn-2 takes wn-1's pod; wn-3 waits a round
    assert "max_drains_per_round (1)" in result.kept_nodes["wn-3"]


def test_the_budget_reason_names_the_same_pod_whatever_the_pod_order():
    wn = make_group("wn")
    nodes = [make_node("wn-1", wn), make_node("wn-2", wn)]
    web = [make_pod(f"run{i}", cpu=300, node="wn-1", labels={"app": "web"}) for i in (3, 1)]
    records = [
        make_record("wn-1", "wn", NodePhase.USED, since=0, underutilized_since=0),
        make_record("wn-2", "wn", NodePhase.USED, since=0),
    ]
    pods = [*web, make_pod("anchor", cpu=2500, node="wn-2")]
    blocked = [DisruptionBudget("default", {"app": "web"}, disruptions_allowed=0)]
    reasons = {
        run(nodes, order, [wn], records, blocked, scale_down_underutilized=True).kept_nodes["wn-1"]
        for order in (pods, list(reversed(pods)))
    }
    assert reasons == {"pod default/run1: PodDisruptionBudget allows no more disruptions"}
