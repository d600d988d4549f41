"""Reconcile rounds against the fake Kubernetes API (real client, real watch) with a recording fake power
manager: batched scale-up, restart without duplicates, idle scale-down, drains stopped by budgets or protected
pods, resumption of an interrupted drain, and power-on errors."""

from __future__ import annotations

from deployer.adapters.power.edge import EdgeBoard, EdgePowerManager
from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.model import (
    ElasticityState,
    GroupKind,
    NodeGroup,
    NodePhase,
    NodeRecord,
    Plan,
    ScaleDown,
    ScaleUp,
)
from deployer.daemon.actuator import Actuator
from deployer.daemon.reconciler import Reconciler
from deployer.errors import RemoteError, TransientError
from tests.daemon.conftest import SETTINGS, WN, pending_count, records_of, register, wait_for
from tests.daemon.fakes import FakePowerManager


def _reconciler(cluster, tmp_path, power: FakePowerManager) -> Reconciler:
    return Reconciler(cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / "state.db", "c1"))


def _node(kube_api, name: str) -> dict | None:
    return kube_api.get("Node", "", name)


def test_pending_pods_become_one_batched_power_on_and_a_restart_adds_nothing(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    for i in range(5):  # 1 core each: 3 fit on one 3.9-core node, so two nodes are needed
        kube_api.add_pod(f"work-{i}", cpu="1", memory="512Mi", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 5)
    power = FakePowerManager()

    first = _reconciler(cluster, tmp_path, power).run_once(1000.0)
    assert first.errors == []
    assert power.create_calls == [("wn", 2)]
    booting = {r.name for r in first.state.records.values() if r.phase is NodePhase.POWERING_ON}
    assert booting == {"wn-0", "wn-1"}

    # A new daemon process (fresh objects, same database) while the VMs are still booting.
    restarted = _reconciler(cluster, tmp_path, power).run_once(1010.0)
    assert power.create_calls == [("wn", 2)]
    assert {r.name for r in restarted.state.records.values()} == booting

    for name in sorted(booting):
        register(control_plane, name)
    assert len(control_plane.schedule().bound) == 5
    wait_for(cluster, lambda s: pending_count(s) == 0 and len(s.nodes) == 2)
    settled = _reconciler(cluster, tmp_path, power).run_once(1020.0)
    assert {r.phase for r in settled.state.records.values()} == {NodePhase.USED}
    assert power.create_calls == [("wn", 2)]


def test_unrecorded_vms_are_adopted_instead_of_duplicated(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)  # a run that crashed after the IM call, before writing its record
    power.create_calls.clear()
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    outcome = _reconciler(cluster, tmp_path, power).run_once(50.0)
    assert outcome.adopted == ("wn-0",)
    assert outcome.state.records["wn-0"].phase is NodePhase.POWERING_ON
    assert power.create_calls == []


def test_an_idle_node_is_cordoned_powered_off_and_deleted(kube_api, cluster, control_plane, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    kube_api.add_pod("agent", node="wn-0", owner_kind="DaemonSet")  # does not keep the node busy
    wait_for(cluster, lambda s: len(s.nodes) == 1 and len(s.pods) == 1)
    reconciler = _reconciler(cluster, tmp_path, power)

    adopted = reconciler.run_once(100.0)
    assert adopted.state.records["wn-0"].phase is NodePhase.IDLE
    assert power.delete_calls == []
    gone = reconciler.run_once(100.0 + SETTINGS.idle_time + 1)
    assert gone.errors == []
    assert power.delete_calls == [("wn", ("wn-0",))]
    assert _node(kube_api, "wn-0") is None
    cordon = kube_api.requests_to("PATCH", "/api/v1/nodes/wn-0")
    delete = kube_api.requests_to("DELETE", "/api/v1/nodes/wn-0")
    assert cordon and delete and kube_api.requests.index(cordon[0]) < kube_api.requests.index(delete[0])
    assert kube_api.requests_to("POST", r".*/eviction") == []  # DaemonSet pods are not evicted


def test_drain_evicts_after_the_cordon_then_powers_off(kube_api, cluster, control_plane, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    kube_api.add_pod("web-1", node="wn-0", labels={"app": "web"})
    store = NodeStateStore(tmp_path / "state.db", "c1")
    actuator = Actuator(cluster, [WN], {"wn": power}, store, SETTINGS, drain_timeout=5)

    result = actuator.execute(
        Plan(scale_downs=(ScaleDown("wn", ("wn-0",), "test"),)), records_of("wn-0"), 5.0
    )
    assert result.errors == []
    cordon = kube_api.requests_to("PATCH", "/api/v1/nodes/wn-0")[0]
    eviction = kube_api.requests_to("POST", "/api/v1/namespaces/default/pods/web-1/eviction")[0]
    assert kube_api.requests.index(cordon) < kube_api.requests.index(eviction)
    assert kube_api.get("Pod", "default", "web-1") is None
    assert power.delete_calls == [("wn", ("wn-0",))]
    assert store.load().records["wn-0"].phase is NodePhase.POWERING_OFF


def test_a_budget_stops_the_drain_and_the_node_is_given_back(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    kube_api.add_pod("db-0", node="wn-0", labels={"app": "db"}, owner_kind="StatefulSet")
    kube_api.add_pdb("db", match_labels={"app": "db"}, min_available=1)  # no disruption allowed
    store = NodeStateStore(tmp_path / "state.db", "c1")
    actuator = Actuator(cluster, [WN], {"wn": power}, store, SETTINGS, drain_timeout=5)

    result = actuator.execute(
        Plan(scale_downs=(ScaleDown("wn", ("wn-0",), "test"),)), records_of("wn-0"), 5.0
    )
    assert kube_api.requests_to("POST", "/api/v1/namespaces/default/pods/db-0/eviction")  # it was asked
    assert kube_api.get("Pod", "default", "db-0") is not None
    assert not (_node(kube_api, "wn-0") or {}).get("spec", {}).get("unschedulable")  # uncordoned
    assert power.delete_calls == []
    assert result.state.records["wn-0"].phase is NodePhase.USED
    assert store.load().records["wn-0"].phase is NodePhase.USED


def test_a_protected_pod_that_landed_after_planning_stops_the_drain_without_evictions(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    kube_api.add_pod("job-7", node="wn-0", owner_kind="Job")
    actuator = Actuator(
        cluster, [WN], {"wn": power}, NodeStateStore(tmp_path / "state.db", "c1"), SETTINGS, drain_timeout=5
    )
    actuator.execute(Plan(scale_downs=(ScaleDown("wn", ("wn-0",), "test"),)), records_of("wn-0"), 5.0)
    assert kube_api.requests_to("POST", r".*/eviction") == []
    assert power.delete_calls == []
    assert not (_node(kube_api, "wn-0") or {}).get("spec", {}).get("unschedulable")


def test_a_restart_finishes_an_interrupted_drain(kube_api, cluster, control_plane, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    kube_api.add_pod("web-1", node="wn-0")
    wait_for(cluster, lambda s: len(s.nodes) == 1 and len(s.pods) == 1)
    # The previous daemon recorded DRAINING and died before evicting anything.
    NodeStateStore(tmp_path / "state.db", "c1").save(records_of("wn-0", phase=NodePhase.DRAINING))

    outcome = _reconciler(cluster, tmp_path, power).run_once(10.0)
    assert outcome.errors == []
    assert kube_api.get("Pod", "default", "web-1") is None
    assert power.delete_calls == [("wn", ("wn-0",))]
    assert _node(kube_api, "wn-0") is None


def test_a_transient_power_on_error_is_reported_and_retried_next_round(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager(errors=[TransientError("IM answered 500")])
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    reconciler = _reconciler(cluster, tmp_path, power)
    failed = reconciler.run_once(10.0)
    assert [type(e) for e in failed.errors] == [TransientError]
    assert failed.state.group_backoff_until == {}  # the loop's backoff retries, the group stays eligible
    retried = reconciler.run_once(11.0)
    assert retried.errors == [] and power.create_calls == [("wn", 1)]


def test_a_hard_power_on_error_benches_the_group(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager(errors=[RemoteError("quota exceeded")])
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    reconciler = _reconciler(cluster, tmp_path, power)
    failed = reconciler.run_once(10.0)
    assert failed.state.group_backoff_until["wn"] == 10.0 + SETTINGS.failure_backoff
    again = reconciler.run_once(20.0)
    assert power.create_calls == [] and again.plan.scale_ups == ()


def test_a_boot_that_times_out_is_removed_and_benches_the_group(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    NodeStateStore(tmp_path / "state.db", "c1").save(
        ElasticityState(
            records={"wn-0": NodeRecord("wn-0", "wn", NodePhase.POWERING_ON, since=0.0, vm_id="0")}
        )
    )
    reconciler = _reconciler(cluster, tmp_path, power)
    outcome = reconciler.run_once(SETTINGS.provision_timeout + 1)
    assert [f.node for f in outcome.plan.failures] == ["wn-0"]
    assert power.delete_calls == [("wn", ("wn-0",))]
    assert outcome.state.records["wn-0"].phase is NodePhase.FAILED
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    snapshot = wait_for(cluster, lambda s: pending_count(s) == 1)
    later = reconciler.run_once(SETTINGS.provision_timeout + 10)
    assert later.plan.scale_ups == () and power.create_calls == [("wn", 1)]  # only the test's own call
    assert "backing off" in later.plan.explanations[snapshot.pods[0].uid]


def test_an_always_on_board_is_only_cordoned(kube_api, cluster, control_plane, tmp_path) -> None:
    board_group = NodeGroup("pis", 0, 1, WN.shape, kind=GroupKind.EDGE_ALWAYS_ON, hosts=("pi-a",))
    register(control_plane, "pi-a", "pis")
    store = NodeStateStore(tmp_path / "state.db", "c1")
    boards = {"pi-a": EdgeBoard("pi-a", address="127.0.0.1")}
    actuator = Actuator(cluster, [board_group], {"pis": EdgePowerManager(boards)}, store, SETTINGS)
    state = ElasticityState(records={"pi-a": NodeRecord("pi-a", "pis", NodePhase.IDLE, 0.0, idle_since=0.0)})
    result = actuator.execute(Plan(scale_downs=(ScaleDown("pis", ("pi-a",), "idle"),)), state, 100.0)
    assert result.errors == []
    assert _node(kube_api, "pi-a")["spec"]["unschedulable"] is True  # kept, cordoned: never deleted
    assert result.state.records["pi-a"].phase is NodePhase.POWERING_OFF
    woken = actuator.execute(
        Plan(scale_ups=(ScaleUp("pis", 1, "pods", nodes=("pi-a",)),)), result.state, 200.0
    )
    assert woken.errors == []
    assert not _node(kube_api, "pi-a")["spec"].get("unschedulable")
    assert woken.state.records["pi-a"].phase is NodePhase.POWERING_ON


def test_finished_pods_teach_the_planner_their_run_times_once(kube_api, cluster, tmp_path) -> None:
    from deployer.core.elasticity.runtimes import workload_class

    def finish(name: str, start: str, end: str) -> None:
        def done(pod: dict) -> None:
            pod["status"].update(
                phase="Succeeded",
                startTime=start,
                containerStatuses=[
                    {
                        "name": "main",
                        "ready": False,
                        "restartCount": 0,
                        "image": "busybox",
                        "imageID": "",
                        "state": {"terminated": {"exitCode": 0, "finishedAt": end}},
                    }
                ],
            )

        kube_api.update_pod("default", name, done)

    for i, seconds in enumerate((40, 50, 70)):
        kube_api.add_pod(f"job-{i}", cpu="1", labels={"app": "mask"}, owner_kind="Job")
        finish(f"job-{i}", "2026-12-03T10:00:00Z", f"2026-12-03T10:{seconds // 60:02d}:{seconds % 60:02d}Z")
    wait_for(cluster, lambda s: len(cluster.finished_pods()) == 3)
    reconciler = _reconciler(cluster, tmp_path, FakePowerManager())
    reconciler.run_once(1000.0)
    reconciler.run_once(1010.0)  # the same pods again: learned once, not twice
    (cls,) = {workload_class(pod) for pod in cluster.finished_pods()}
    assert reconciler.runtimes.samples == {cls: (40.0, 50.0, 70.0)}
