"""Failover, in process: leadership is checked right before every side effect, the removal marks on Nodes
let any replica resume a drain another one started, and scale-ups do not wait behind drains."""

from __future__ import annotations

import threading

from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.model import (
    NodePhase,
    Plan,
    ScaleDown,
    ScaleUp,
)
from deployer.daemon.actuator import Actuator, LeadershipLost
from deployer.daemon.reconciler import Reconciler
from tests.daemon.conftest import SETTINGS, WN, records_of, register, wait_for
from tests.daemon.fakes import FakePowerManager


def test_a_replica_that_loses_the_lease_mid_drain_stops_before_its_next_change(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    for i in range(3):
        kube_api.add_pod(f"web-{i}", node="wn-0")
    leading = threading.Event()
    leading.set()
    evictions: list[str] = []

    def hook(method: str, path: str, phase: str) -> None:
        if method == "POST" and path.endswith("/eviction") and phase == "applied":
            evictions.append(path)
            leading.clear()  # the Lease is lost right after the first eviction

    kube_api.hook = hook
    store = NodeStateStore(tmp_path / "state.db", "c1")
    actuator = Actuator(cluster, [WN], {"wn": power}, store, SETTINGS, drain_timeout=5, leader=leading.is_set)
    result = actuator.execute(
        Plan(
            scale_ups=(ScaleUp("wn", 1, "pods"),),
            scale_downs=(ScaleDown("wn", ("wn-0",), "idle"),),
        ),
        records_of("wn-0"),
        10.0,
    )
    assert power.create_calls == [("wn", 1), ("wn", 1)]  # the test's own, then the plan's: first
    assert len(evictions) == 1  # no second eviction, no power-off, no delete
    assert any(isinstance(e, LeadershipLost) for e in result.errors)
    assert power.delete_calls == [] and kube_api.get("Node", "", "wn-0") is not None
    node = kube_api.get("Node", "", "wn-0")
    assert node["spec"]["unschedulable"] is True
    assert node["metadata"]["annotations"]["deployer.io/scale-down"] == "draining"

    # The new leader has its own (empty) database: the mark on the Node tells it to finish the job.
    kube_api.hook = None
    wait_for(cluster, lambda s: len(s.pods) == 2 and s.nodes[0].unschedulable)
    successor = Reconciler(
        cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / "other.db", "c1"), drain_timeout=5
    )
    resumed = successor.run_once(20.0)
    assert resumed.errors == []
    assert ("wn", ("wn-0",)) in power.delete_calls
    assert kube_api.get("Node", "", "wn-0") is None
    assert power.create_calls == [("wn", 1), ("wn", 1)]  # wn-1 booting is adopted, not booted again


def test_drains_run_concurrently_and_each_is_bounded(kube_api, cluster, control_plane, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 3)
    kube_api.hold_evicted_pods = True  # evicted pods stay Terminating: every drain runs to its timeout
    for i in range(3):
        register(control_plane, f"wn-{i}")
        kube_api.add_pod(f"web-{i}", node=f"wn-{i}")
    together = threading.Barrier(3)  # passes only if three drains evict at the same time
    broken: list[str] = []
    power_ons_at_cordon: list[int] = []

    def hook(method: str, path: str, phase: str) -> None:
        if method == "PATCH" and phase == "received":
            power_ons_at_cordon.append(len(power.create_calls))
        if method == "POST" and path.endswith("/eviction") and phase == "received":
            try:
                together.wait(timeout=20)
            except threading.BrokenBarrierError:
                broken.append(path)

    kube_api.hook = hook
    actuator = Actuator(
        cluster, [WN], {"wn": power}, NodeStateStore(tmp_path / "s.db", "c1"), SETTINGS, drain_timeout=2
    )
    result = actuator.execute(
        Plan(
            scale_ups=(ScaleUp("wn", 1, "pods"),),
            scale_downs=(ScaleDown("wn", ("wn-0", "wn-1", "wn-2"), "idle"),),
        ),
        records_of("wn-0", "wn-1", "wn-2"),
        5.0,
    )
    assert broken == []
    assert len(kube_api.requests_to("POST", r".*/eviction")) == 3
    phases = {n: r.phase for n, r in result.state.records.items()}
    # Each drain ended at its own timeout with its pod still Terminating: tried again next round.
    assert phases == {
        "wn-0": NodePhase.DRAINING,
        "wn-1": NodePhase.DRAINING,
        "wn-2": NodePhase.DRAINING,
        "wn-3": NodePhase.POWERING_ON,
    }
    assert power.delete_calls == []
    # The scale-up went out before the first cordon.
    assert power.create_calls == [("wn", 3), ("wn", 1)] and min(power_ons_at_cordon) == 2
