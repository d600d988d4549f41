"""VM-to-node identity and safe removal: a worker whose kubelet registered under another name is a booted
node, never a failed boot; a VM whose Node exists goes only through a drain; a Node object goes only once
its VM is confirmed gone."""

from __future__ import annotations

import time

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.power import PoweredOn
from deployer.adapters.power.im import IMPowerManager
from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.from_spec import settings_from_spec
from deployer.core.elasticity.model import NodeGroup, NodePhase
from deployer.daemon.identity import VM_ID_LABEL, NodeIdentity, match_vms
from deployer.daemon.reconciler import Reconciler
from tests.daemon.conftest import (
    SETTINGS,
    VM_CPU,
    VM_MEMORY,
    WN,
    IMCluster,
    pending_count,
    records_of,
    register,
    wait_for,
    worker_vms,
)
from tests.daemon.fakes import FakePowerManager
from tests.daemon.im_proxy import IMProxy


def test_vms_match_nodes_by_label_provider_id_name_or_a_unique_address() -> None:
    vms = [
        PoweredOn("wn-1", "1"),
        PoweredOn("wn-2", "2", instance_id="8c1f-uuid"),
        PoweredOn("wn-3", "3"),
        PoweredOn("wn-4", "4", addresses=("10.1.0.4",)),
        PoweredOn("wn-5", "5", addresses=("10.0.0.1",)),  # shared with wn-6: proves nothing
        PoweredOn("wn-6", "6", addresses=("10.0.0.1",)),
        PoweredOn("wn-7", "7"),  # nothing matches: an orphan
    ]
    nodes = [
        NodeIdentity("host-a", vm_id="1"),
        NodeIdentity("host-b", provider_id="openstack:///8c1f-uuid"),
        NodeIdentity("wn-3"),
        NodeIdentity("host-d", addresses=("10.1.0.4",)),
        NodeIdentity("host-e", addresses=("10.0.0.1",)),
        NodeIdentity("wn-1"),  # named like VM 1, but VM 1's label claimed host-a: not VM 1's node
    ]
    assert match_vms(vms, nodes) == {"wn-1": "host-a", "wn-2": "host-b", "wn-3": "wn-3", "wn-4": "host-d"}


def _fake_reconciler(cluster, tmp_path, power) -> Reconciler:
    return Reconciler(
        cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / "state.db", "c1"), drain_timeout=5
    )


def test_a_not_ready_node_past_the_timeout_is_drained_before_its_vm_goes(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = FakePowerManager()
    power.power_on(WN, 1)
    control_plane.register_node("wn-0", "wn", cpu="3900m", memory="7936Mi")
    kube_api.set_node_ready("wn-0", False)
    kube_api.add_pod("job-0", node="wn-0", owner_kind="Job")  # still running there
    kube_api.add_pod("web-0", node="wn-0", labels={"app": "web"})
    kube_api.hold_evicted_pods = True  # no kubelet: an evicted pod never finishes terminating
    wait_for(cluster, lambda s: len(s.pods) == 2 and not s.nodes[0].ready)
    reconciler = _fake_reconciler(cluster, tmp_path, power)
    late = time.time() + SETTINGS.provision_timeout + 60

    kept = reconciler.run_once(late)
    assert [f.node for f in kept.plan.failures] == ["wn-0"]
    assert power.delete_calls == []  # a running job: the drain stopped, the VM stays
    assert kube_api.requests_to("POST", r".*/eviction") == []
    assert not kube_api.get("Node", "", "wn-0")["spec"].get("unschedulable")  # given back
    assert kube_api.get("Pod", "default", "job-0")["status"]["phase"] == "Running"

    control_plane.finish_jobs()
    wait_for(cluster, lambda s: len(s.pods) == 1)
    removed = reconciler.run_once(late + 10)
    assert removed.errors == []
    assert kube_api.requests_to("POST", "/api/v1/namespaces/default/pods/web-0/eviction")  # budgets asked
    assert power.delete_calls == [("wn", ("wn-0",))]
    assert kube_api.get("Node", "", "wn-0") is None
    assert removed.state.records["wn-0"].phase is NodePhase.FAILED


class _StubbornPower(FakePowerManager):
    """A cloud whose VM removal is accepted but does not happen (yet)."""

    def power_off(self, group: NodeGroup, nodes) -> None:
        self.delete_calls.append((group.name, tuple(nodes)))


def test_a_node_object_stays_until_its_vm_is_confirmed_gone(
    kube_api, cluster, control_plane, tmp_path
) -> None:
    power = _StubbornPower()
    power.power_on(WN, 1)
    register(control_plane, "wn-0")
    wait_for(cluster, lambda s: len(s.nodes) == 1)
    NodeStateStore(tmp_path / "state.db", "c1").save(records_of("wn-0"))
    outcome = _fake_reconciler(cluster, tmp_path, power).run_once(SETTINGS.idle_time + 1)
    assert power.delete_calls == [("wn", ("wn-0",))]
    node = kube_api.get("Node", "", "wn-0")
    assert node is not None  # the VM still runs: its Node stays visible to every later round
    assert node["metadata"]["annotations"]["deployer.io/scale-down"] == "powering-off"
    assert outcome.state.records["wn-0"].phase is NodePhase.POWERING_OFF


@pytest.mark.im
def test_a_worker_registered_under_another_name_is_kept_and_later_removed_through_a_drain(
    kube_api, cluster, control_plane, im_cluster: IMCluster, im_proxy: IMProxy, im_user, tmp_path
) -> None:
    power = IMPowerManager(IMClient(im_proxy.url, im_user.entries, retries=1), im_cluster.infra_id)
    settings = settings_from_spec(im_cluster.spec)
    reconciler = Reconciler(
        cluster,
        [im_cluster.group],
        settings,
        {"wn": power},
        NodeStateStore(tmp_path / "state.db", "c1"),
        drain_timeout=5,
    )
    kube_api.add_pod("job-0", cpu="500m", memory="256Mi", owner_kind="Job", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    start = time.time()
    assert reconciler.run_once(start).errors == []
    (vm,) = worker_vms(im_cluster)
    # The kubelet registers as its cloud hostname, not wn-<id>; the join labels it with the IM VM id.
    control_plane.register_node(
        "host-17.cloud.example", labels={VM_ID_LABEL: vm}, cpu=VM_CPU, memory=VM_MEMORY
    )
    assert control_plane.schedule().bound == {"default/job-0": "host-17.cloud.example"}
    wait_for(cluster, lambda s: pending_count(s) == 0 and len(s.nodes) == 1)

    late = start + settings.provision_timeout + 60  # long past the boot timeout of "wn-<id>"
    kept = reconciler.run_once(late)
    assert kept.errors == [] and kept.plan.failures == ()
    assert worker_vms(im_cluster) == [vm]
    record = kept.state.records["host-17.cloud.example"]
    assert (record.phase, record.vm_id) == (NodePhase.USED, vm)
    assert f"wn-{vm}" not in kept.state.records

    control_plane.finish_jobs()
    kube_api.delete_pod("default", "job-0")
    wait_for(cluster, lambda s: not s.pods)
    assert reconciler.run_once(late + 10).state.records["host-17.cloud.example"].phase is NodePhase.IDLE
    gone = reconciler.run_once(late + 10 + settings.idle_time + 1)
    assert gone.errors == []
    assert worker_vms(im_cluster) == []  # the right VM was removed, through its node's drain
    assert kube_api.get("Node", "", "host-17.cloud.example") is None
    cordon = kube_api.requests_to("PATCH", "/api/v1/nodes/host-17.cloud.example")[0]
    delete = kube_api.requests_to("DELETE", "/api/v1/nodes/host-17.cloud.example")[0]
    assert kube_api.requests.index(cordon) < kube_api.requests.index(delete)
