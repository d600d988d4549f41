"""The test scheduler/kubelet (tests/fixtures/kube_cluster.py) that the daemon's integration tests rely on."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.fixtures.kube_cluster import FakeControlPlane


@pytest.fixture
def plane(kube_api):
    return FakeControlPlane(kube_api)


def pod(kube_api, name: str):
    return kube_api.get("Pod", "default", name)


def test_register_node_is_ready_and_labelled_with_its_group(kube_api, plane):
    plane.register_node("cpu-1", "cpu", cpu="2", memory="4Gi", labels={"zone": "a"})
    node = kube_api.get("Node", "", "cpu-1")
    assert node["metadata"]["labels"]["deployer.io/group"] == "cpu"
    assert node["metadata"]["labels"]["zone"] == "a"
    assert node["status"]["allocatable"]["cpu"] == "2"
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    custom = FakeControlPlane(kube_api, group_label="example.org/pool")
    custom.register_node("gpu-1", "gpu")
    assert kube_api.get("Node", "", "gpu-1")["metadata"]["labels"]["example.org/pool"] == "gpu"


def test_binds_by_requests_and_marks_the_rest_unschedulable(kube_api, plane):
    plane.register_node("n1", cpu="2", memory="2Gi")
    kube_api.add_pod("big", cpu="1500m", memory="1Gi")
    kube_api.add_pod("second", cpu="600m", memory="256Mi")  # 1500m + 600m > 2 cores
    kube_api.add_pod("small", cpu="500m", memory="1Gi")  # fits exactly: 2000m, 2048Mi

    result = plane.schedule()

    assert result.bound == {"default/big": "n1", "default/small": "n1"}
    assert result.unschedulable == ["default/second"]
    assert pod(kube_api, "big")["status"]["phase"] == "Running"
    waiting = pod(kube_api, "second")
    assert waiting["spec"].get("nodeName") is None
    assert [(c["type"], c["status"], c["reason"]) for c in waiting["status"]["conditions"]] == [
        ("PodScheduled", "False", "Unschedulable")
    ]
    assert plane.free(kube_api.get("Node", "", "n1")) == (0, 0, 0, 108)

    rv = kube_api.resource_version
    assert plane.schedule().unschedulable == ["default/second"]
    assert kube_api.resource_version == rv  # no rewrite of an already-unschedulable pod

    plane.register_node("n2", cpu="1")
    assert plane.schedule().bound == {"default/second": "n2"}


def test_pod_slots_count(kube_api, plane):
    plane.register_node("n1", pods=1)
    kube_api.add_pod("a")
    kube_api.add_pod("b")
    assert len(plane.schedule().bound) == 1


def test_selectors_affinity_and_taints(kube_api, plane):
    plane.register_node("arm-1", labels={"kubernetes.io/arch": "arm64"})
    plane.register_node("gpu-1", gpu=1, taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    plane.register_node("plain-1", labels={"kubernetes.io/arch": "amd64", "size": "8"})
    kube_api.add_pod("on-arm", node_selector={"kubernetes.io/arch": "arm64"})
    kube_api.add_pod("needs-gpu", gpu=1, tolerations=[{"key": "gpu", "operator": "Exists"}])
    kube_api.add_pod("gpu-untolerated", gpu=1)
    kube_api.add_pod(
        "big-amd",
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "size", "operator": "Gt", "values": ["4"]}]},
                    ]
                }
            }
        },
    )
    kube_api.add_pod("nowhere", node_selector={"kubernetes.io/arch": "s390x"})

    result = plane.schedule()

    assert result.bound == {
        "default/on-arm": "arm-1",
        "default/needs-gpu": "gpu-1",
        "default/big-amd": "plain-1",
    }
    assert sorted(result.unschedulable) == ["default/gpu-untolerated", "default/nowhere"]


def test_not_ready_and_cordoned_nodes_get_nothing(kube_api, plane):
    plane.register_node("booting")
    kube_api.set_node_ready("booting", False)
    kube_api.add_node("cordoned", unschedulable=True)
    kube_api.add_pod("a")
    assert plane.schedule().unschedulable == ["default/a"]
    kube_api.set_node_ready("booting", True)
    assert plane.schedule().bound == {"default/a": "booting"}


def test_higher_priority_pods_are_placed_first(kube_api, plane):
    plane.register_node("n1", cpu="1")
    kube_api.add_pod("low", cpu="1", priority=0)
    kube_api.add_pod("high", cpu="1", priority=100)
    assert plane.schedule().bound == {"default/high": "n1"}


def test_finish_jobs_completes_running_job_pods_only(kube_api, plane):
    plane.register_node("n1")
    plane.register_node("n2")
    kube_api.add_pod("job-a", node="n1", owner_kind="Job")
    kube_api.add_pod("job-b", node="n2", owner_kind="Job")
    kube_api.add_pod("web", node="n1")
    assert plane.finish_jobs(node="n1") == ["default/job-a"]
    assert pod(kube_api, "job-a")["status"]["phase"] == "Succeeded"
    assert pod(kube_api, "job-b")["status"]["phase"] == "Running"
    assert plane.finish_jobs() == ["default/job-b"]
    assert pod(kube_api, "web")["status"]["phase"] == "Running"
    # Finished pods free their node.
    assert plane.free(kube_api.get("Node", "", "n2"))[0] == 4000


def test_reap_terminating_removes_pods_whose_eviction_was_held(kube_api, plane):
    kube_api.hold_evicted_pods = True
    plane.register_node("n1")
    kube_api.add_pod("web", node="n1", labels={"app": "web"})
    kube_api.add_pod("web-2", node="n1", labels={"app": "web"})
    kube_api.add_pdb("web", match_labels={"app": "web"}, max_unavailable=1)
    core = client.CoreV1Api(kube_api.api_client())
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name="web", namespace="default"))
    core.create_namespaced_pod_eviction("web", "default", body)

    assert pod(kube_api, "web")["metadata"]["deletionTimestamp"]
    # A terminating pod is no longer healthy: the budget is spent until it is gone.
    assert kube_api.get("PodDisruptionBudget", "default", "web")["status"]["disruptionsAllowed"] == 0
    assert plane.reap_terminating() == ["default/web"]
    assert pod(kube_api, "web") is None
    assert plane.reap_terminating() == []
