"""The sandbox cluster in-process (no IM): the official client and kubectl against it, Jobs and their pods
through scheduling, boot and completion on an accelerated clock, and a restart that keeps every object.

The IM's VM list is played by ``VMs`` (what ``IMPowerManager.nodes`` returns); the demo test drives the
real IM."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from deployer.adapters.power.port import PoweredOn
from deployer.clock import ScaledClock
from deployer.core.elasticity.model import NodeGroup
from deployer.core.spec import validate_spec
from deployer.sandbox.control_plane import RUN_SECONDS_ANNOTATION, run_seconds
from deployer.sandbox.processes import kubeconfig
from deployer.sandbox.server import Sandbox

KUBECTL = shutil.which("kubectl")
SPEED = 20.0
SPEC = validate_spec(
    {
        "name": "sbx",
        "worker_groups": [
            {
                "name": "gpu",
                "cpus": 4,
                "memory": "8 GiB",
                "gpus": 1,
                "boot_seconds": 40,
                "labels": {"tier": "batch"},
                "taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
            }
        ],
    }
)


class VMs:
    """The IM's VMs of each group, as the daemon's power manager lists them."""

    def __init__(self) -> None:
        self.live: dict[str, list[PoweredOn]] = {}

    def nodes(self, group: NodeGroup) -> list[PoweredOn]:
        return list(self.live.get(group.name, []))


@pytest.fixture
def vms() -> VMs:
    return VMs()


@pytest.fixture
def sandbox(tmp_path: Path, vms: VMs) -> Iterator[Sandbox]:
    running = Sandbox(tmp_path / "sbx", clock=ScaledClock.starting_now(SPEED), spec=SPEC, vms=vms).start()
    try:
        yield running
    finally:
        running.stop()


def api_client(url: str) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=url))


def eventually(what: str, check: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
    return result


def job(name: str, command: list[str], annotations: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "command": command,
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}},
                        }
                    ],
                },
            }
        },
    }


def test_a_job_waits_unschedulable_then_runs_on_a_booted_vm_and_completes(sandbox: Sandbox, vms: VMs) -> None:
    api = api_client(sandbox.url)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job("default", job("train", ["sh", "-c", "sleep 30"]))

    def the_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod("default", label_selector="job-name=train").items
        return pods[0] if pods else None

    pod = eventually("the Job controller makes a pod", the_pod)
    assert pod.metadata.owner_references[0].kind == "Job"
    # No node fits: PodScheduled=False, reason Unschedulable, as kube-scheduler writes it.
    eventually(
        "the pod is marked Unschedulable",
        lambda: any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for c in (the_pod().status.conditions or [])
        ),
    )

    vms.live["gpu"] = [PoweredOn("gpu-1", "1")]
    node = eventually("the kubelet registers", lambda: sandbox.api.get("Node", "", "gpu-1"))
    assert node["metadata"]["labels"]["tier"] == "batch"
    assert node["metadata"]["labels"]["deployer.io/group"] == "gpu"
    assert node["spec"]["taints"] == [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]
    # The group's size less the reservation the planner assumes.
    assert node["status"]["allocatable"] == {
        "cpu": "3900m",
        "memory": "7936Mi",
        "pods": "110",
        "nvidia.com/gpu": "1",
    }

    eventually("the pod runs on the booted node", lambda: the_pod().spec.node_name == "gpu-1")
    life = sandbox.kubelets.lives["gpu-1"]
    # Virtual seconds: registered NotReady first, Ready after the group's boot time.
    assert life.seen_at + 32 <= life.registered_at < life.ready_at
    assert life.ready_at - life.seen_at >= 40
    started = the_pod().status.start_time
    eventually(
        "the job completes", lambda: batch.read_namespaced_job("train", "default").status.succeeded == 1
    )
    done = batch.read_namespaced_job("train", "default")
    assert {c.type for c in done.status.conditions} >= {"Complete"}
    assert (done.status.completion_time - started).total_seconds() >= 30  # its `sleep 30`

    vms.live["gpu"] = []  # the daemon removed the VM in the IM
    eventually("the node goes with its VM", lambda: sandbox.api.get("Node", "", "gpu-1") is None)
    assert sandbox.kubelets.lives["gpu-1"].gone_at is not None
    api.close()


def test_the_run_time_comes_from_the_annotation_or_a_sleep_command() -> None:
    def pod(command: list[str], annotations: dict[str, str] | None = None) -> dict:
        return {
            "metadata": {"annotations": annotations or {}},
            "spec": {"containers": [{"command": command}]},
        }

    assert run_seconds(pod(["sleep", "12"])) == 12
    assert run_seconds(pod(["sh", "-c", "echo hi; sleep 7.5 && true"])) == 7.5
    assert run_seconds(pod(["sleep", "12"], {RUN_SECONDS_ANNOTATION: "3"})) == 3
    assert run_seconds(pod(["python", "train.py", "--sleep-first"])) is None
    assert run_seconds(pod(["nginx"])) is None


def test_a_restart_keeps_every_object_and_old_watches_relist(tmp_path: Path, vms: VMs) -> None:
    root = tmp_path / "sbx"
    first = Sandbox(root, clock=ScaledClock.starting_now(SPEED), spec=SPEC, vms=vms).start()
    api = api_client(first.url)
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", job("keep", ["sleep", "3600"]))
    eventually("its pod exists", lambda: len(sandbox_pods(first)) == 1)
    listed = client.CoreV1Api(api).list_pod_for_all_namespaces()
    port = first.api.port
    first.stop()
    api.close()
    saved = root / "objects.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    again = Sandbox(root, clock=ScaledClock.starting_now(1.0), spec=SPEC, vms=vms, port=port).start()
    try:
        assert again.clock.speed == SPEED  # the sandbox keeps its own clock across restarts
        api = api_client(again.url)
        assert [j.metadata.name for j in client.BatchV1Api(api).list_namespaced_job("default").items] == [
            "keep"
        ]
        assert [p["metadata"]["name"] for p in sandbox_pods(again)] == [p.metadata.name for p in listed.items]
        assert int(again.api.resource_version) > int(listed.metadata.resource_version)
        # A watch from before the restart cannot resume: 410 Gone, as after an etcd compaction.
        stream = watch.Watch().stream(
            client.CoreV1Api(api).list_pod_for_all_namespaces,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=2,
        )
        with pytest.raises(ApiException) as gone:
            next(iter(stream))
        assert gone.value.status == 410
        api.close()
    finally:
        again.stop()


def sandbox_pods(sandbox: Sandbox) -> list[dict]:
    return sandbox.api.list("Pod")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_creates_and_lists_jobs_and_shows_nodes(sandbox: Sandbox, vms: VMs, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump(kubeconfig("sbx", sandbox.url)))
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job("from-kubectl", ["sleep", "5"])))

    def kubectl(*args: str, check: bool = True) -> str:
        done = subprocess.run(
            [KUBECTL, "--kubeconfig", str(config), *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 or not check, done.stderr
        return done.stdout

    assert "Server Version: v1.32" in kubectl("version")
    # kubectl validates against the server's OpenAPI, which the sandbox does not serve.
    assert "job.batch/from-kubectl created" in kubectl("create", "--validate=false", "-f", str(manifest))
    assert "from-kubectl" in kubectl("get", "jobs")
    nodes = kubectl("get", "nodes")
    assert "front" in nodes and "control-plane" in nodes
    vms.live["gpu"] = [PoweredOn("gpu-7", "7")]
    eventually(
        "gpu-7 is Ready", lambda: " Ready " in kubectl("get", "node", "gpu-7", check=False), timeout=30
    )
    eventually("the job's pod completes", lambda: "Completed" in kubectl("get", "pods"), timeout=30)
    kubectl("delete", "job", "from-kubectl")
    eventually("the collector deletes its pods", lambda: not sandbox_pods(sandbox))


def test_it_listens_on_loopback_only(sandbox: Sandbox) -> None:
    host = sandbox.api._server.server_address[0]
    assert host == "127.0.0.1"


def test_unreadable_objects_are_kept_aside_and_the_sandbox_starts_empty(tmp_path: Path, vms: VMs) -> None:
    root = tmp_path / "sbx"
    root.mkdir()
    (root / "objects.json").write_text('{"api": {"objects": ')  # cut short by a full disk
    sandbox = Sandbox(root, clock=ScaledClock.starting_now(1.0), spec=SPEC, vms=vms).start()
    try:
        assert [n["metadata"]["name"] for n in sandbox.api.list("Node")] == ["front"]
        assert (root / "objects.json.unreadable").read_text() == '{"api": {"objects": '
        assert (
            json.loads((root / "objects.json").read_text())["api"]["objects"]["Node"][0]["metadata"]["name"]
            == "front"
        )
    finally:
        sandbox.stop()
