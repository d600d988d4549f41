"""The daemon with the REAL local IM as power manager (Dummy VMs) and the fake Kubernetes API.

Safety: Dummy VMs all report IP 10.0.0.1; nothing here uses VM addresses. VMs are mapped to Kubernetes
nodes by name (``<group>-<IM VM id>``), and "booting" a VM means the test registers that node name.
"""

from __future__ import annotations

import threading
import time

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.power.im import IMPowerManager
from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.from_spec import settings_from_spec
from deployer.core.elasticity.model import NodePhase
from deployer.daemon.loop import DaemonLoop, LoopSettings
from deployer.daemon.reconciler import Reconciler
from tests.daemon.conftest import VM_CPU, VM_MEMORY, IMCluster, pending_count, wait_for, worker_vms
from tests.daemon.im_proxy import IMProxy

pytestmark = pytest.mark.im


def _reconciler(cluster, im: IMCluster, proxy: IMProxy, db, im_user) -> Reconciler:
    power = IMPowerManager(IMClient(proxy.url, im_user.entries, retries=1), im.infra_id)
    return Reconciler(
        cluster,
        [im.group],
        settings_from_spec(im.spec),
        {"wn": power},
        NodeStateStore(db, "c1"),
        drain_timeout=5,
    )


def test_scale_up_in_one_call_then_idle_nodes_are_drained_and_removed(
    kube_api, cluster, control_plane, im_cluster, im_proxy, im_user, tmp_path
) -> None:
    update_path = f"/infrastructures/{im_cluster.infra_id}"
    for i in range(4):  # 900m each: two per VM, so two VMs
        kube_api.add_pod(f"work-{i}", cpu="900m", memory="256Mi", unschedulable=True, labels={"app": "work"})
    wait_for(cluster, lambda s: pending_count(s) == 4)
    reconciler = _reconciler(cluster, im_cluster, im_proxy, tmp_path / "state.db", im_user)

    up = reconciler.run_once(1000.0)
    assert up.errors == []
    assert [(r.method, r.status) for r in im_proxy.calls("POST", update_path)] == [("POST", 200)]
    vms = worker_vms(im_cluster)
    assert len(vms) == 2
    names = sorted(r.name for r in up.state.records.values() if r.phase is NodePhase.POWERING_ON)
    assert names == sorted(f"wn-{vm}" for vm in vms)

    for name in names:  # the VMs boot and their kubelets register
        control_plane.register_node(name, "wn", cpu=VM_CPU, memory=VM_MEMORY)
    assert len(control_plane.schedule().bound) == 4
    wait_for(cluster, lambda s: pending_count(s) == 0 and len(s.nodes) == 2)
    assert reconciler.run_once(1010.0).errors == []

    for i in range(4):  # the work is done
        kube_api.delete_pod("default", f"work-{i}")
    wait_for(cluster, lambda s: not s.pods)
    idle = reconciler.run_once(1020.0)
    assert {r.phase for r in idle.state.records.values()} == {NodePhase.IDLE}
    down = reconciler.run_once(1020.0 + 61)
    assert down.errors == []
    assert len(im_proxy.calls("POST", update_path)) == 1  # no absolute-count update for a removal
    removals = [r for r in im_proxy.requests if r.method == "DELETE" and "/vms/" in r.path]
    assert len(removals) == 1  # both VMs by id in one IM call
    assert worker_vms(im_cluster) == []
    assert kube_api.list("Node") == []
    for name in names:
        cordons = kube_api.requests_to("PATCH", f"/api/v1/nodes/{name}")
        deletes = kube_api.requests_to("DELETE", f"/api/v1/nodes/{name}")
        assert (
            cordons and deletes and kube_api.requests.index(cordons[0]) < kube_api.requests.index(deletes[0])
        )


def test_a_restart_during_a_scale_up_starts_no_second_vm(
    kube_api, cluster, im_cluster, im_proxy, im_user, tmp_path
) -> None:
    update_path = f"/infrastructures/{im_cluster.infra_id}"
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    db = tmp_path / "state.db"
    _reconciler(cluster, im_cluster, im_proxy, db, im_user).run_once(100.0)
    assert len(worker_vms(im_cluster)) == 1

    # The daemon restarts while the VM boots: new objects, same database.
    again = _reconciler(cluster, im_cluster, im_proxy, db, im_user).run_once(130.0)
    assert again.errors == [] and again.plan.scale_ups == ()
    # Worse: the state was lost (the crash came between the IM call and the write). The IM's VM is adopted.
    lost = _reconciler(cluster, im_cluster, im_proxy, tmp_path / "fresh.db", im_user).run_once(160.0)
    assert lost.adopted == (f"wn-{worker_vms(im_cluster)[0]}",)
    assert lost.plan.scale_ups == ()
    assert len(im_proxy.calls("POST", update_path)) == 1
    assert len(worker_vms(im_cluster)) == 1


def test_an_im_500_backs_off_then_recovers(
    kube_api, cluster, im_cluster, im_proxy, im_user, tmp_path
) -> None:
    update_path = f"/infrastructures/{im_cluster.infra_id}"
    reconciler = _reconciler(cluster, im_cluster, im_proxy, tmp_path / "state.db", im_user)
    loop = DaemonLoop(
        reconciler,
        cluster,
        LoopSettings(batch_idle=0.1, batch_max=0.5, resync_period=0.2, backoff_base=0.2, backoff_max=5),
    )
    im_proxy.fail_with = 500
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    try:
        kube_api.add_pod("work-0", cpu="1", unschedulable=True)
        deadline = time.monotonic() + 20
        while reconciler.metrics.value("deployer_reconcile_errors_total", error="TransientError") < 3:
            assert time.monotonic() < deadline, "the loop did not keep retrying"
            time.sleep(0.05)
        assert loop.stats.delays[:3] == [0.2, 0.4, 0.8]
        assert runner.is_alive()
        assert worker_vms(im_cluster) == []
        im_proxy.fail_with = None
        while not worker_vms(im_cluster):
            assert time.monotonic() < deadline, "no scale-up after the IM recovered"
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    ok_updates = [r for r in im_proxy.calls("POST", update_path) if r.status == 200]
    assert len(ok_updates) == 1 and len(worker_vms(im_cluster)) == 1
