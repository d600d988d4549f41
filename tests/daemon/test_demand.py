"""What the daemon scales for: node templates learnt from real nodes (no boot loop for a pod that fits the
spec's size but not the real one), demand limited to pods the scheduler marked Unschedulable, and no
decision on a cache whose watch broke until it has resynced."""

from __future__ import annotations

import time

from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.model import NodePhase
from deployer.daemon.reconciler import NOT_DEMAND, Reconciler
from tests.daemon.conftest import SETTINGS, WN, pending_count, wait_for
from tests.daemon.fakes import FakePowerManager


def _reconciler(cluster, tmp_path, power: FakePowerManager) -> Reconciler:
    return Reconciler(cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / "state.db", "c1"))


def test_a_pod_larger_than_the_real_node_boots_at_most_once_then_is_unplaceable(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = FakePowerManager()
    reconciler = _reconciler(cluster, tmp_path, power)  # the spec says 4 cpu: the template offers 3.9
    kube_api.add_pod("big", cpu="3800m", memory="1Gi", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    assert [u.count for u in reconciler.run_once(100.0).plan.scale_ups] == [1]

    # The VM registers with 3.5 cpu allocatable, and a DaemonSet takes its share.
    control_plane.register_node("wn-0", "wn", cpu="3500m", memory="7936Mi")
    kube_api.add_pod("agent-wn-0", node="wn-0", owner_kind="DaemonSet", cpu="200m")
    assert control_plane.schedule().unschedulable == ["default/big"]
    wait_for(cluster, lambda s: len(s.nodes) == 1 and len(s.pods) == 2)
    seen = reconciler.run_once(110.0)
    assert seen.plan.scale_ups == ()
    assert [u.reason for u in seen.plan.unplaceable] == ["wn: cpu 3800m > 3300m"]
    assert reconciler.templates["wn"].cpu_m == 3300

    # The idle node goes; the group keeps the template it learnt, so nothing boots again.
    gone = reconciler.run_once(110.0 + SETTINGS.idle_time + 1)
    assert power.delete_calls == [("wn", ("wn-0",))] and kube_api.get("Node", "", "wn-0") is None
    assert gone.plan.scale_ups == ()
    wait_for(cluster, lambda s: not s.nodes)
    for later in (300.0, 400.0):
        again = reconciler.run_once(later)
        assert again.plan.scale_ups == () and len(again.plan.unplaceable) == 1
    assert power.create_calls == [("wn", 1)]


def test_only_pods_the_scheduler_found_unschedulable_are_demand(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    kube_api.add_pod("gated", cpu="1", scheduling_gates=["example.com/quota"])
    kube_api.add_pod("with-claim", cpu="1", claims=["data"])
    assert control_plane.schedule().unschedulable == ["default/with-claim"]
    kube_api.add_pod("not-tried-yet", cpu="1")
    wait_for(cluster, lambda s: pending_count(s) == 3 and any(p.name == "with-claim" for p in s.pods))
    power = FakePowerManager()
    reconciler = _reconciler(cluster, tmp_path, power)

    idle = reconciler.run_once(100.0)
    assert idle.plan.scale_ups == () and power.create_calls == []
    assert set(idle.plan.explanations.values()) == {NOT_DEMAND}
    claim = kube_api.get("Pod", "default", "with-claim")["status"]["conditions"][0]
    assert (claim["reason"], "unbound immediate PersistentVolumeClaims" in claim["message"]) == (
        "Unschedulable",
        True,
    )
    gated = kube_api.get("Pod", "default", "gated")["status"]["conditions"][0]
    assert gated["reason"] == "SchedulingGated"

    kube_api.add_pod("real", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 4)
    grown = reconciler.run_once(110.0)
    assert [(u.group, u.count, len(u.pod_uids)) for u in grown.plan.scale_ups] == [("wn", 1, 1)]


def test_no_scale_up_on_a_broken_watch_until_the_cache_has_resynced(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager()
    reconciler = _reconciler(cluster, tmp_path, power)
    assert cluster.synced
    kube_api.fail_with = 503  # the API server goes away: the relist fails too
    kube_api.break_watches()
    deadline = time.monotonic() + 10
    while cluster.synced:
        assert time.monotonic() < deadline, "a broken watch left the cache marked synced"
        time.sleep(0.02)
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)  # created while we were blind
    blind = reconciler.run_once(100.0)
    assert blind.plan.scale_ups == () and not blind.snapshot.synced and power.create_calls == []

    kube_api.fail_with = None
    wait_for(cluster, lambda s: s.synced and pending_count(s) == 1, timeout=30)
    back = reconciler.run_once(110.0)
    assert power.create_calls == [("wn", 1)]
    assert back.state.records["wn-0"].phase is NodePhase.POWERING_ON
