"""The fake Kubernetes API server speaks the real API: checked with the official client and with kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

KUBECTL = shutil.which("kubectl")


def names(items) -> list[str]:
    return sorted(item.metadata.name for item in items)


@pytest.fixture
def core(kube_api):
    return client.CoreV1Api(kube_api.api_client())


@pytest.fixture
def policy(kube_api):
    return client.PolicyV1Api(kube_api.api_client())


def test_pod_lists_honour_field_and_label_selectors(kube_api, core):
    kube_api.add_node("n1")
    kube_api.add_pod("web-1", node="n1", labels={"app": "web", "tier": "front"})
    kube_api.add_pod("web-2", "prod", node="n1", labels={"app": "web"})
    kube_api.add_pod("batch-1", labels={"app": "batch"})
    kube_api.add_pod("done-1", node="n1", phase="Succeeded", labels={"app": "batch"})

    assert names(core.list_pod_for_all_namespaces(field_selector="status.phase=Pending").items) == ["batch-1"]
    assert names(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=").items) == ["batch-1"]
    assert names(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items) == [
        "done-1",
        "web-1",
        "web-2",
    ]
    on_node_running = "spec.nodeName!=,status.phase!=Succeeded"
    assert names(core.list_pod_for_all_namespaces(field_selector=on_node_running).items) == ["web-1", "web-2"]
    assert names(core.list_namespaced_pod("prod").items) == ["web-2"]
    assert names(core.list_pod_for_all_namespaces(label_selector="app=web,tier").items) == ["web-1"]
    assert names(core.list_pod_for_all_namespaces(label_selector="app in (web, batch),!tier").items) == [
        "batch-1",
        "done-1",
        "web-2",
    ]
    assert names(core.list_pod_for_all_namespaces(label_selector="app notin (web),app!=x").items) == [
        "batch-1",
        "done-1",
    ]
    listing = core.list_pod_for_all_namespaces()
    assert int(listing.metadata.resource_version) == kube_api.resource_version


def test_lists_paginate_with_limit_and_continue(kube_api, core):
    for i in range(5):
        kube_api.add_node(f"n{i}")
    first = core.list_node(limit=2)
    assert names(first.items) == ["n0", "n1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_node(limit=2, _continue=first.metadata._continue)
    third = core.list_node(limit=2, _continue=second.metadata._continue)
    assert names(second.items) + names(third.items) == ["n2", "n3", "n4"]
    assert third.metadata._continue is None


def test_unknown_field_selector_is_a_400_status(core):
    with pytest.raises(ApiException) as caught:
        core.list_pod_for_all_namespaces(field_selector="spec.hostname=x")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["kind"] == "Status"


def test_node_patches_follow_each_content_type(kube_api, core):
    kube_api.add_node("n1", taints=[{"key": "a", "value": "1", "effect": "NoSchedule"}])

    core.patch_node("n1", {"spec": {"unschedulable": True}})  # the client sends a strategic merge patch
    assert kube_api.requests_to("PATCH", "/api/v1/nodes/n1")[-1].content_type == (
        "application/strategic-merge-patch+json"
    )
    assert core.read_node("n1").spec.unschedulable is True

    # Strategic merge: taints merge by key; a merge patch replaces the list.
    core.patch_node("n1", {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}})
    assert [t.key for t in core.read_node("n1").spec.taints] == ["a", "b"]
    core.patch_node(
        "n1",
        {"spec": {"taints": [{"key": "c", "effect": "NoSchedule"}]}, "metadata": {"labels": {"x": "y"}}},
        _content_type="application/merge-patch+json",
    )
    node = core.read_node("n1")
    assert [t.key for t in node.spec.taints] == ["c"]
    assert node.metadata.labels["x"] == "y"

    core.patch_node("n1", [{"op": "remove", "path": "/spec/unschedulable"}])  # a list is a JSON patch
    assert kube_api.requests_to("PATCH", "/api/v1/nodes/n1")[-1].content_type == "application/json-patch+json"
    assert core.read_node("n1").spec.unschedulable is None


def test_objects_created_through_the_api_get_server_defaults(kube_api, core):
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name="api-made", labels={"app": "web"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )
    created = core.create_namespaced_pod("team", body)
    assert (created.metadata.namespace, created.status.phase) == ("team", "Pending")
    assert created.metadata.uid and created.metadata.resource_version
    assert names(core.list_pod_for_all_namespaces(field_selector="status.phase=Pending").items) == [
        "api-made"
    ]
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("team", body)
    assert caught.value.status == 409


def test_missing_objects_are_404_statuses_and_delete_removes(kube_api, core):
    kube_api.add_node("n1")
    core.delete_node("n1")
    for call in (
        lambda: core.read_node("n1"),
        lambda: core.delete_node("n1"),
        lambda: core.patch_node("n1", {}),
    ):
        with pytest.raises(ApiException) as caught:
            call()
        status = json.loads(caught.value.body)
        assert (caught.value.status, status["kind"], status["reason"]) == (404, "Status", "NotFound")


def eviction(name: str, namespace: str = "default") -> client.V1Eviction:
    return client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))


def test_pdb_status_is_computed_and_blocks_evictions_with_429(kube_api, core, policy):
    kube_api.add_node("n1")
    for i in range(3):
        kube_api.add_pod(f"web-{i}", node="n1", labels={"app": "web"})
    kube_api.add_pod("web-pending", labels={"app": "web"})  # not healthy: does not count as available
    kube_api.add_pdb("web", match_labels={"app": "web"}, min_available=2)
    kube_api.add_pdb("half", "other", match_labels={"app": "web"}, max_unavailable="50%")

    pdb = policy.read_namespaced_pod_disruption_budget("web", "default")
    assert (pdb.status.current_healthy, pdb.status.expected_pods, pdb.status.disruptions_allowed) == (3, 4, 1)

    core.create_namespaced_pod_eviction("web-0", "default", eviction("web-0"))
    assert kube_api.get("Pod", "default", "web-0") is None
    assert policy.read_namespaced_pod_disruption_budget("web", "default").status.disruptions_allowed == 0

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_eviction("web-1", "default", eviction("web-1"))
    status = json.loads(caught.value.body)
    assert caught.value.status == 429
    assert status["reason"] == "TooManyRequests"
    assert status["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert kube_api.get("Pod", "default", "web-1") is not None

    # Pending pods ignore budgets, as in the real eviction handler.
    core.create_namespaced_pod_eviction("web-pending", "default", eviction("web-pending"))
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod_eviction("ghost", "default", eviction("ghost"))
    assert caught.value.status == 404

    listed = policy.list_pod_disruption_budget_for_all_namespaces().items
    assert sorted((p.metadata.namespace, p.metadata.name) for p in listed) == [
        ("default", "web"),
        ("other", "half"),
    ]
    assert [p.metadata.name for p in policy.list_namespaced_pod_disruption_budget("other").items] == ["half"]


def test_leases_use_optimistic_concurrency(kube_api):
    leases = client.CoordinationV1Api(kube_api.api_client())
    with pytest.raises(ApiException) as caught:
        leases.read_namespaced_lease("lock", "kube-system")
    assert caught.value.status == 404

    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="lock"), spec=client.V1LeaseSpec(holder_identity="a")
    )
    created = leases.create_namespaced_lease("kube-system", body)
    with pytest.raises(ApiException) as caught:
        leases.create_namespaced_lease("kube-system", body)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (409, "AlreadyExists")

    created.spec.holder_identity = "b"
    updated = leases.replace_namespaced_lease("lock", "kube-system", created)
    assert updated.spec.holder_identity == "b"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("lock", "kube-system", created)
    assert (caught.value.status, json.loads(caught.value.body)["reason"]) == (409, "Conflict")
    assert leases.read_namespaced_lease("lock", "kube-system").spec.holder_identity == "b"


def test_watch_streams_changes_from_a_resource_version(kube_api, core):
    kube_api.add_node("n1")
    kube_api.add_pod("a", labels={"app": "web"})
    start_rv = core.list_pod_for_all_namespaces().metadata.resource_version
    kube_api.add_pod("b", labels={"app": "web"})
    kube_api.update_pod("default", "a", lambda pod: pod["metadata"]["labels"].update(app="batch"))
    kube_api.delete_pod("default", "b")
    kube_api.add_node("n2")  # another kind: not in this stream

    stream = watch.Watch().stream(
        core.list_pod_for_all_namespaces,
        resource_version=start_rv,
        timeout_seconds=1,
        label_selector="app=web",
    )
    events = [(event["type"], event["object"].metadata.name) for event in stream]
    # "a" stopped matching the selector: for this watch it is gone.
    assert events == [("ADDED", "b"), ("DELETED", "a"), ("DELETED", "b")]


def test_watch_without_resource_version_starts_with_the_current_state_and_honours_timeout(kube_api, core):
    kube_api.add_pod("a")
    began = time.monotonic()
    stream = watch.Watch().stream(
        core.list_pod_for_all_namespaces, timeout_seconds=1, allow_watch_bookmarks=True
    )
    events = [(event["type"], event["raw_object"]["metadata"]) for event in stream]
    assert time.monotonic() - began < 5
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK"]
    assert events[-1][1]["resourceVersion"] == str(kube_api.resource_version)


def test_watch_from_a_compacted_resource_version_gets_410(kube_api, core):
    kube_api.add_pod("a")
    old_rv = core.list_pod_for_all_namespaces().metadata.resource_version
    kube_api.expire_watches()
    with pytest.raises(ApiException) as caught:
        list(
            watch.Watch().stream(core.list_pod_for_all_namespaces, resource_version=old_rv, timeout_seconds=1)
        )
    assert caught.value.status == 410
    fresh_rv = core.list_pod_for_all_namespaces().metadata.resource_version
    assert list(watch.Watch().stream(core.list_node, resource_version=fresh_rv, timeout_seconds=1)) == []


def _watch_until_cut(core, cut) -> BaseException | None:
    """Watch pods until ``cut`` (run 0.3 s in) ends the stream; the error the client saw, if any."""
    timer = threading.Timer(0.3, cut)
    timer.start()
    try:
        for _ in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=20):
            pass
    except Exception as err:
        return err
    finally:
        timer.cancel()
    return None


def test_a_broken_watch_fails_the_client_where_a_dropped_one_ends_cleanly(kube_api, core):
    assert _watch_until_cut(core, kube_api.drop_watches) is None
    assert isinstance(_watch_until_cut(core, kube_api.break_watches), urllib3.exceptions.ProtocolError)


def test_fail_with_answers_every_request_and_hooks_see_each_one_twice(kube_api, core):
    seen = []
    kube_api.hook = lambda method, path, phase: seen.append((method, path, phase))
    kube_api.add_node("n1")
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    assert seen == [("PATCH", "/api/v1/nodes/n1", "received"), ("PATCH", "/api/v1/nodes/n1", "applied")]
    kube_api.fail_with = 503
    with pytest.raises(ApiException) as refused:
        core.read_node("n1")
    assert refused.value.status == 503
    kube_api.fail_with = None
    assert core.read_node("n1").spec.unschedulable is True


def test_gated_pods_are_marked_as_the_api_server_does(kube_api, core):
    kube_api.add_pod("gated", scheduling_gates=["example.com/wait"], claims=["data"])
    pod = core.read_namespaced_pod("gated", "default")
    assert [g.name for g in pod.spec.scheduling_gates] == ["example.com/wait"]
    assert pod.spec.volumes[0].persistent_volume_claim.claim_name == "data"
    assert [(c.type, c.status, c.reason) for c in pod.status.conditions] == [
        ("PodScheduled", "False", "SchedulingGated")
    ]


def test_requests_are_recorded(kube_api, core):
    kube_api.add_node("n1")
    core.list_node(label_selector="a=b")
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    served = [(r.method, r.path, r.query, r.status) for r in kube_api.requests]
    assert served == [
        ("GET", "/api/v1/nodes", {"labelSelector": "a=b"}, 200),
        ("PATCH", "/api/v1/nodes/n1", {}, 200),
    ]
    assert kube_api.requests[-1].body == {"spec": {"unschedulable": True}}


def kubectl(kube_api, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"KUBECONFIG": "/dev/null", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.run(
        [KUBECTL or "kubectl", f"--server={kube_api.url}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_reads_and_drains_the_fake(kube_api):
    kube_api.add_node("n1")
    kube_api.add_node("n2")
    kube_api.add_pod("web-1", node="n1", labels={"app": "web"})
    kube_api.add_pod("proxy-n1", "kube-system", node="n1", owner_kind="DaemonSet", owner_name="kube-proxy")
    kube_api.add_pod("bare-1", node="n1", owner_kind=None)
    kube_api.add_pod("web-2", node="n2", labels={"app": "web"})

    nodes = kubectl(kube_api, "get", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    assert [line.split()[:2] for line in nodes.stdout.splitlines()[1:]] == [["n1", "Ready"], ["n2", "Ready"]]
    pods = kubectl(kube_api, "get", "pods", "-A", "--chunk-size=3")  # pages through limit/continue
    assert pods.returncode == 0, pods.stderr
    assert sorted(line.split()[1] for line in pods.stdout.splitlines()[1:]) == [
        "bare-1",
        "proxy-n1",
        "web-1",
        "web-2",
    ]
    assert [r.query.get("continue") is not None for r in kube_api.requests_to("GET", "/api/v1/pods")] == [
        False,
        True,
    ]

    drained = kubectl(kube_api, "drain", "n1", "--ignore-daemonsets", "--force", "--timeout=30s")
    assert drained.returncode == 0, drained.stderr
    assert kube_api.get("Node", "", "n1")["spec"]["unschedulable"] is True
    after = kubectl(kube_api, "get", "nodes", "n1").stdout.splitlines()[1].split()
    assert after[1] == "Ready,SchedulingDisabled"
    assert kube_api.get("Pod", "default", "web-1") is None
    assert kube_api.get("Pod", "default", "bare-1") is None  # --force
    assert kube_api.get("Pod", "kube-system", "proxy-n1") is not None  # DaemonSet pods stay
    assert kube_api.get("Pod", "default", "web-2") is not None
    evictions = [r.path for r in kube_api.requests_to("POST", r"/api/v1/namespaces/.*/eviction")]
    assert sorted(evictions) == [
        "/api/v1/namespaces/default/pods/bare-1/eviction",
        "/api/v1/namespaces/default/pods/web-1/eviction",
    ]
    cordon_at = kube_api.requests.index(kube_api.requests_to("PATCH", "/api/v1/nodes/n1")[0])
    first_eviction_at = kube_api.requests.index(kube_api.requests_to("POST", r".*/eviction")[0])
    assert cordon_at < first_eviction_at


@pytest.mark.slow  # kubectl waits 5 s between eviction retries
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_drain_stops_on_a_pdb(kube_api):
    kube_api.add_node("n1")
    kube_api.add_pod("web-1", node="n1", labels={"app": "web"})
    kube_api.add_pdb("web", match_labels={"app": "web"}, min_available=1)
    drained = kubectl(kube_api, "drain", "n1", "--ignore-daemonsets", "--timeout=2s")
    assert drained.returncode != 0
    assert "disruption budget" in drained.stderr
    assert kube_api.get("Pod", "default", "web-1") is not None
    assert {r.status for r in kube_api.requests_to("POST", r".*/eviction")} == {429}
