"""Builders shared by the daemon tests: a watched KubeCluster on the fake API, node groups and settings,
an infrastructure on the real local IM and a recording proxy in front of it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deployer.adapters.im.client import IMClient
from deployer.adapters.kube import KubeCluster
from deployer.core.elasticity.from_spec import groups_from_spec
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    NodeGroup,
    NodePhase,
    NodeRecord,
    Resources,
    Snapshot,
)
from deployer.core.spec import ClusterSpec, fill_secrets, validate_spec
from deployer.lifecycle.prepare import render_prepared
from tests.daemon.im_proxy import IMProxy
from tests.fixtures.kube_api import FakeKubeAPI
from tests.fixtures.kube_cluster import FakeControlPlane

# What a registered test node offers; the group shape says the same so the planner packs like the scheduler.
NODE_CPU, NODE_MEMORY = "3900m", "7936Mi"
SHAPE = Resources(cpu_m=3900, memory_mib=7936, pods=110)
WN = NodeGroup("wn", min_size=0, max_size=4, shape=SHAPE, kind=GroupKind.CLOUD)
SETTINGS = ElasticitySettings(idle_time=60, scale_down_cooldown=0, provision_timeout=600)


@pytest.fixture
def cluster(kube_api: FakeKubeAPI) -> Iterator[KubeCluster]:
    watched = KubeCluster(kube_api.api_client(), watch_timeout=5).start()
    try:
        assert watched.wait_synced(10)
        yield watched
    finally:
        watched.stop()


@pytest.fixture
def control_plane(kube_api: FakeKubeAPI) -> FakeControlPlane:
    return FakeControlPlane(kube_api)


@pytest.fixture
def im_proxy(local_im) -> Iterator[IMProxy]:
    """A recording proxy in front of the session's real IM that can answer 500 on demand."""
    proxy = IMProxy(local_im.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def write_kubeconfig(tmp_path: Path, url: str) -> Path:
    """A kubeconfig file pointing at the fake API server (for the CLI and subprocesses)."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
                "current-context": "fake",
            }
        )
    )
    return path


def wait_for(cluster: KubeCluster, condition: Callable[[Snapshot], bool], timeout: float = 10.0) -> Snapshot:
    """Wait until the watch cache shows ``condition`` (the fake's writes reach it asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = cluster.snapshot()
        if condition(snapshot):
            return snapshot
        if time.monotonic() > deadline:
            raise AssertionError(f"the watched snapshot never satisfied the condition: {snapshot}")
        time.sleep(0.02)


def pending_count(snapshot: Snapshot) -> int:
    return sum(1 for pod in snapshot.pods if pod.node_name is None and pod.phase == "Pending")


def records_of(*names: str, phase: NodePhase = NodePhase.IDLE) -> ElasticityState:
    """A state where the daemon remembers these ``wn`` nodes in ``phase`` since t=0 (idle since t=0)."""
    return ElasticityState(records={n: NodeRecord(n, "wn", phase, since=0.0, idle_since=0.0) for n in names})


def register(control_plane: FakeControlPlane, name: str, group: str = "wn") -> None:
    """The VM booted: its kubelet registers a Ready node of the test shape."""
    control_plane.register_node(name, group, cpu=NODE_CPU, memory=NODE_MEMORY)


# What a worker VM of the spec below offers to pods (2 CPUs, 4 GiB, less the system reservation).
VM_CPU, VM_MEMORY = "1900m", "3840Mi"


@dataclass
class IMCluster:
    spec: ClusterSpec
    infra_id: str
    client: IMClient  # straight to the IM, for assertions
    group: NodeGroup


def _wait_configured(client: IMClient, infra_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (state := client.state(infra_id).state) != "configured":
        assert state not in ("failed", "unconfigured"), state
        assert time.monotonic() < deadline, f"infrastructure stuck in {state}"
        time.sleep(0.3)


def worker_group_data(name: str, **elasticity: object) -> dict:
    """A spec (as data) with a front end on the local IM's Dummy cloud and one empty worker group ``wn``."""
    return {
        "name": name,
        "cloud": "local",
        "oscar": {"enabled": False},
        "elasticity": {"idle_time": 60, **elasticity},
        "worker_groups": [{"name": "wn", "min": 0, "max": 4, "initial": 0}],
    }


def create_im_cluster(im_url: str, entries: list, data: dict) -> IMCluster:
    """Create the infrastructure of spec ``data`` on the IM and wait until it is configured."""
    spec, _ = fill_secrets(validate_spec(data), {}, lambda *_, **__: secrets.token_urlsafe(12))
    client = IMClient(im_url, entries, retries=1)
    infra_id = client.create(render_prepared(spec, deployment_tag=spec.name).tosca)
    _wait_configured(client, infra_id)
    (group,) = groups_from_spec(spec)
    return IMCluster(spec, infra_id, client, group)


@pytest.fixture
def im_cluster(local_im, im_user) -> Iterator[IMCluster]:
    """A fresh infrastructure on the real local IM: the front end (VM 0) and an empty worker group."""
    cluster = create_im_cluster(local_im.url, im_user.entries, worker_group_data(f"d{secrets.token_hex(3)}"))
    yield cluster
    cluster.client.destroy(cluster.infra_id)
    cluster.client.close()


def worker_vms(im: IMCluster) -> list[str]:
    return [vm for vm in im.client.vm_ids(im.infra_id) if vm != "0"]  # VM 0 is the front end
