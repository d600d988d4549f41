"""The daemon's Kubernetes adapter (deployer.adapters.kube) against the fake API server."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes.client.exceptions import ApiException

from deployer.adapters.kube import KubeCluster, make_api_client, translate_api_error
from deployer.core.elasticity.model import OwnerKind, Resources
from deployer.errors import AuthError, RemoteConflict, RemoteError, RemoteNotFound, TransientError, UserError
from tests.fixtures.kube_cluster import FakeControlPlane


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def plane(kube_api):
    return FakeControlPlane(kube_api)


@pytest.fixture
def cluster(kube_api):
    watched = KubeCluster(kube_api.api_client(), watch_timeout=5)
    yield watched
    watched.stop()


def test_snapshot_converts_the_watched_cluster(kube_api, plane, cluster):
    plane.register_node("cpu-1", "cpu", cpu="2", memory="4Gi")
    kube_api.add_node("unmanaged")
    kube_api.add_pod("web-1", node="cpu-1", cpu="250m", memory="512Mi", labels={"app": "web"})
    kube_api.add_pod("proxy", "kube-system", node="cpu-1", owner_kind="DaemonSet")
    kube_api.add_pod("done", node="cpu-1", owner_kind="Job", phase="Succeeded")
    kube_api.add_pdb("web", match_labels={"app": "web"}, min_available=1)
    assert cluster.snapshot().synced is False

    cluster.start()
    assert cluster.wait_synced(5)
    snap = cluster.snapshot()

    assert snap.synced is True
    assert [(n.name, n.group) for n in snap.nodes] == [("cpu-1", "cpu"), ("unmanaged", None)]
    assert snap.nodes[0].allocatable == Resources(cpu_m=2000, memory_mib=4096, pods=110)
    assert [(p.namespace, p.name, p.owner_kind) for p in snap.pods] == [
        ("default", "web-1", OwnerKind.REPLICA_SET),
        ("kube-system", "proxy", OwnerKind.DAEMON_SET),
    ]  # the finished Job pod holds nothing and is left out
    assert snap.pods[0].requests == Resources(cpu_m=250, memory_mib=512, pods=1)
    assert [(b.match_labels, b.disruptions_allowed) for b in snap.budgets] == [({"app": "web"}, 0)]

    kube_api.delete("Node", "", "unmanaged")
    assert wait_until(lambda: [n.name for n in cluster.snapshot().nodes] == ["cpu-1"])
    assert [n.group for n in cluster.snapshot(group_label="kubernetes.io/hostname").nodes] == ["cpu-1"]


def test_each_new_unschedulable_pod_fires_the_listener_once(kube_api, plane, cluster):
    plane.register_node("n1", cpu="1")
    seen: list[str] = []
    cluster.add_unschedulable_listener(lambda pod: seen.append(pod.name))
    cluster.start()
    assert cluster.wait_synced(5)

    kube_api.add_pod("fits", cpu="1")
    kube_api.add_pod("waits", cpu="1")
    plane.schedule()
    assert wait_until(lambda: seen == ["waits"])

    kube_api.update_pod("default", "waits", lambda pod: pod["metadata"]["labels"].update(touched="yes"))
    kube_api.add_pod("also-waits", cpu="2", unschedulable=True)
    assert wait_until(lambda: seen == ["waits", "also-waits"])
    assert wait_until(
        lambda: "touched" in next(p for p in cluster.snapshot().pods if p.name == "waits").labels
    )
    assert seen == ["waits", "also-waits"]  # a change to an already-reported pod is not news


def test_pods_already_unschedulable_at_start_are_reported_by_the_first_list(kube_api, cluster):
    kube_api.add_pod("waiting", unschedulable=True)
    kube_api.add_pod("just-created")
    seen: list[str] = []
    cluster.add_unschedulable_listener(lambda pod: seen.append(pod.name))
    cluster.start()
    assert cluster.wait_synced(5)
    assert seen == ["waiting"]


def test_a_410_gone_leads_to_a_relist_that_catches_up(kube_api, cluster):
    kube_api.add_pod("old")
    cluster.start()
    assert cluster.wait_synced(5)
    lists_before = len([r for r in kube_api.requests_to("GET", "/api/v1/pods") if not r.query.get("watch")])

    kube_api.expire_watches()
    kube_api.delete_pod("default", "old")
    kube_api.add_pod("new")

    assert wait_until(lambda: [p.name for p in cluster.snapshot().pods] == ["new"])
    assert cluster.pods.relists >= 1
    lists = [r for r in kube_api.requests_to("GET", "/api/v1/pods") if not r.query.get("watch")]
    assert len(lists) > lists_before


def test_watch_resumes_from_its_resource_version_after_a_dropped_stream(kube_api, cluster):
    cluster.start()
    assert cluster.wait_synced(5)
    kube_api.drop_watches()
    kube_api.add_pod("after-drop")
    assert wait_until(lambda: [p.name for p in cluster.snapshot().pods] == ["after-drop"])
    assert cluster.pods.relists == 0  # resumed, no relist needed


def test_stop_is_prompt_and_leaves_no_threads(kube_api, cluster):
    cluster.start()
    assert cluster.wait_synced(5)
    began = time.monotonic()
    cluster.stop()
    assert time.monotonic() - began < 3
    assert not [t for t in threading.enumerate() if t.name.startswith("kube-reflector")]


def test_drain_cordons_then_evicts_all_but_daemonset_and_mirror_pods(kube_api, plane, cluster):
    plane.register_node("n1")
    plane.register_node("n2")
    kube_api.add_pod("web-1", node="n1")
    kube_api.add_pod("web-2", "apps", node="n1")
    kube_api.add_pod("proxy", "kube-system", node="n1", owner_kind="DaemonSet")
    kube_api.add_pod("static", "kube-system", node="n1", owner_kind="mirror")
    kube_api.add_pod("elsewhere", node="n2")

    result = cluster.drain("n1", timeout=5)

    assert result.complete
    assert sorted(result.evicted) == ["apps/web-2", "default/web-1"]
    assert sorted(result.skipped) == ["kube-system/proxy", "kube-system/static"]
    assert kube_api.get("Node", "", "n1")["spec"]["unschedulable"] is True
    cordon = kube_api.requests_to("PATCH", "/api/v1/nodes/n1")
    evictions = kube_api.requests_to("POST", r"/api/v1/namespaces/[^/]+/pods/[^/]+/eviction")
    assert cordon and len(evictions) == 2
    assert kube_api.requests.index(cordon[0]) < min(kube_api.requests.index(e) for e in evictions)
    assert not kube_api.requests_to("DELETE", "/api/v1/nodes/n1")  # draining never deletes the node
    assert kube_api.get("Pod", "default", "elsewhere") is not None


def test_drain_waits_for_terminating_pods_and_reports_those_left_at_the_timeout(kube_api, plane, cluster):
    kube_api.hold_evicted_pods = True
    plane.register_node("n1")
    kube_api.add_pod("slow", node="n1")

    late = cluster.drain("n1", timeout=0.3, retry_interval=0.05)
    assert (late.complete, late.evicted, late.remaining) == (False, ("default/slow",), ("default/slow",))
    assert kube_api.get("Pod", "default", "slow")["metadata"]["deletionTimestamp"]

    reaper = threading.Timer(0.3, plane.reap_terminating)
    reaper.start()
    try:
        again = cluster.drain("n1", timeout=5, retry_interval=0.05)
    finally:
        reaper.join()
    assert (again.complete, again.remaining) == (True, ())
    assert kube_api.get("Pod", "default", "slow") is None


def test_a_pdb_429_stops_the_drain_and_reports_the_blocked_pod(kube_api, plane, cluster):
    plane.register_node("n1")
    kube_api.add_pod("a-guarded", node="n1", labels={"app": "db"})
    kube_api.add_pod("b-other", node="n1")
    kube_api.add_pdb("db", match_labels={"app": "db"}, min_available=1)

    result = cluster.drain("n1", timeout=5, retry_interval=0.05, max_attempts=3)

    assert not result.complete
    assert result.blocked == ("default/a-guarded",)
    assert "PodDisruptionBudget" in result.reason
    attempts = kube_api.requests_to("POST", r".*/pods/a-guarded/eviction")
    assert [r.status for r in attempts] == [429, 429, 429]
    assert not kube_api.requests_to("POST", r".*/pods/b-other/eviction")  # the drain stopped there
    assert kube_api.get("Pod", "default", "b-other") is not None
    assert kube_api.get("Node", "", "n1") is not None

    cluster.uncordon("n1")
    assert kube_api.get("Node", "", "n1")["spec"].get("unschedulable") is None


def test_a_pod_marked_not_safe_to_evict_stops_the_drain_before_the_cordon(kube_api, plane, cluster):
    plane.register_node("n1")
    kube_api.add_pod("web", node="n1")
    kube_api.add_pod(
        "precious", node="n1", annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    )
    result = cluster.drain("n1", timeout=5)
    assert (result.complete, result.blocked) == (False, ("default/precious",))
    assert not kube_api.requests_to("PATCH", "/api/v1/nodes/n1")
    assert not kube_api.requests_to("POST", r".*/eviction")


def test_delete_node_is_idempotent(kube_api, cluster):
    kube_api.add_node("n1")
    cluster.delete_node("n1")
    assert kube_api.get("Node", "", "n1") is None
    cluster.delete_node("n1")  # 404: already done
    assert [r.status for r in kube_api.requests_to("DELETE", "/api/v1/nodes/n1")] == [200, 404]


def test_writes_map_api_errors_to_the_error_tree(kube_api, cluster):
    with pytest.raises(RemoteNotFound):
        cluster.cordon("ghost")
    assert isinstance(translate_api_error(ApiException(status=409, reason="Conflict"), "x"), RemoteConflict)
    assert isinstance(translate_api_error(ApiException(status=401), "x"), AuthError)
    assert isinstance(translate_api_error(ApiException(status=403), "x"), AuthError)
    assert isinstance(translate_api_error(ApiException(status=503), "x"), TransientError)
    assert type(translate_api_error(ApiException(status=422), "x")) is RemoteError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_api_server_is_transient():
    api_client = make_api_client(host=f"http://127.0.0.1:{closed_port()}")
    api_client.configuration.retries = 0
    unreachable = KubeCluster(api_client)
    try:
        with pytest.raises(TransientError):
            unreachable.cordon("n1")
    finally:
        api_client.close()


def test_an_unreachable_api_server_never_syncs_and_stops_promptly():
    api_client = make_api_client(host=f"http://127.0.0.1:{closed_port()}")
    api_client.configuration.retries = 0
    watched = KubeCluster(api_client).start()
    try:
        assert watched.wait_synced(1) is False
        assert watched.snapshot().synced is False
        assert isinstance(watched.pods.last_error, Exception)
    finally:
        began = time.monotonic()
        watched.stop()
        api_client.close()
    assert time.monotonic() - began < 3


def test_make_api_client_from_a_kubeconfig(kube_api, tmp_path):
    kube_api.add_node("n1")
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{kube_api.url}"}}}}]
users: [{{name: me, user: {{token: s3cret-token}}}}]
contexts: [{{name: ctx, context: {{cluster: fake, user: me}}}}]
current-context: ctx
"""
    )
    api_client = make_api_client(kubeconfig)
    try:
        cluster = KubeCluster(api_client)
        assert [n.metadata.name for n in cluster.core.list_node().items] == ["n1"]
    finally:
        api_client.close()
    with pytest.raises(UserError):
        make_api_client(tmp_path / "missing")
