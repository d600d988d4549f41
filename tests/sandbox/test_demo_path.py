"""The demo's path end to end, on real parts: ``deployer create`` on the embedded local IM (Dummy VMs), the
sandbox Kubernetes API in its own process, the real daemon (``deployer daemon run``) in its own, all on a
clock 10x faster than real time. Checked at each step against the IM's VM list and the sandbox's nodes:
pods pending -> one IM call -> nodes Ready -> pods run -> idle -> drained -> removed in the IM. Then the
user's commands on the same deployment: its kubeconfig for kubectl, and destroy stopping it all."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client, watch

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.lifecycle.credentials import local_auth_entries, local_im
from deployer.paths import resolve_paths
from deployer.sandbox.demo import Demo
from deployer.sandbox.processes import SandboxDaemon, SandboxServer, sandbox_dir
from deployer.sim.trace import TraceJob
from tests.ansible.cli import deployer

pytestmark = [pytest.mark.im, pytest.mark.slow]
pytest.importorskip("IM", reason="the real IM server (pip install 'deployer[local]') is needed")

KUBECTL = shutil.which("kubectl")
T = TypeVar("T")
# Four pods of 900m: two per 2-CPU VM, so two VMs; 30 virtual seconds of work each.
JOBS = [TraceJob(submit_s=0.0, cpu_m=900, memory_mib=256, duration_s=30.0) for _ in range(4)]


class NodeEvents:
    """Every change to the sandbox's nodes, in order, through a watch (a short cordon cannot be missed)."""

    def __init__(self, url: str) -> None:
        self.events: list[tuple[str, str, bool]] = []  # (type, node, cordoned)
        self._api = client.ApiClient(client.Configuration(host=url))
        self._stop = threading.Event()
        core = client.CoreV1Api(self._api)
        self._rv = core.list_node().metadata.resource_version
        self._thread = threading.Thread(target=self._follow, args=(core,), daemon=True)
        self._thread.start()

    def _follow(self, core: client.CoreV1Api) -> None:
        while not self._stop.is_set():
            for event in watch.Watch().stream(core.list_node, resource_version=self._rv, timeout_seconds=2):
                node = event["object"]
                self._rv = node.metadata.resource_version
                self.events.append((event["type"], node.metadata.name, bool(node.spec.unschedulable)))

    def of(self, name: str) -> list[tuple[str, bool]]:
        return [(kind, cordoned) for kind, node, cordoned in self.events if node == name]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._api.close()


def eventually(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


@pytest.fixture
def demo(deployer_home: Path) -> Iterator[Demo]:
    running = Demo(resolve_paths(), JOBS, speed=10.0, cluster="path")
    try:
        yield running
    except BaseException:
        for log in (running.sandbox.console_file, running.daemon.console_file):
            if log.exists():
                print(f"--- {log}", *log.read_text(errors="replace").splitlines()[-40:], sep="\n")
        raise
    finally:
        running.daemon.stop()
        if DeploymentStore(running.paths.state_db).find("path") is not None:
            deployer(deployer_home, "destroy", "path", "--yes")
        deployer(deployer_home, "local", "stop")


def test_pending_pods_become_vms_and_idle_vms_go_away(demo: Demo, deployer_home: Path) -> None:
    demo.create()
    paths = demo.paths
    infra = DeploymentStore(paths.state_db).get("path").infrastructure_id
    running_im = local_im(paths).status()
    assert running_im is not None and infra is not None
    im = IMClient(running_im.url, local_auth_entries(paths))

    def worker_vms() -> list[str]:
        return sorted(vm for vm in im.vm_ids(infra) if vm != "0")  # VM 0 is the front end

    def nodes() -> dict[str, str]:
        return {n.name: n.state for n in demo.view().nodes}

    def api_nodes() -> list[str]:
        return sorted(
            n["metadata"]["name"]
            for n in demo._get("/api/v1/nodes")["items"]
            if n["metadata"]["name"] != "front"
        )

    assert worker_vms() == [] and api_nodes() == []

    # 1. Pods pending: no node can take them.
    nodes_seen = NodeEvents(demo._url)
    demo.start_clock()
    assert demo.submit_due() == 4
    view = eventually("four pods pending", lambda: (v := demo.view()).pending and len(v.pending) == 4 and v)
    assert view.running == 0

    # 2. One IM call starts both VMs; their nodes are not there yet.
    vms = eventually("two worker VMs in the IM", lambda: len(worker_vms()) == 2 and worker_vms())
    expected = {f"wn-{vm}" for vm in vms}
    # The VMs show in the IM before its answer reaches the daemon, which counts the call then.
    assert eventually("the IM call returned", lambda: demo.im_calls()) == {"power_on": 1}
    ups = [d for d in demo.daemon.decisions() if d["decision"] == "scale_up"]
    assert [(d["group"], d["count"]) for d in ups] == [("wn", 2)]
    assert "pending" in ups[0]["reason"]
    assert api_nodes() == [] or set(api_nodes()) <= expected

    # 3. The VMs boot: their nodes register under the names the daemon expects and turn Ready.
    eventually("both nodes Ready", lambda: nodes() == dict.fromkeys(expected, "Ready"))
    assert set(api_nodes()) == expected and worker_vms() == sorted(vms)
    assert demo.im_calls() == {"power_on": 1}

    # 4. The pods run on them.
    view = eventually("four pods running", lambda: (v := demo.view()).running == 4 and v)
    assert view.pending == ()
    bound = {p["spec"]["nodeName"] for p in demo._get("/api/v1/namespaces/default/pods")["items"]}
    assert bound == expected

    # 5. The jobs finish; the nodes stay while idle.
    eventually("every job complete", lambda: demo.view().completed == 4)
    assert set(api_nodes()) == expected and worker_vms() == sorted(vms)

    # 6. Drained (cordoned, evicted, deleted) then 7. removed in the IM.
    eventually("no worker VM left in the IM", lambda: worker_vms() == [], timeout=90)
    eventually("no worker node left in the sandbox", lambda: api_nodes() == [], timeout=10)
    nodes_seen.stop()
    for name in expected:  # each node was cordoned while it still existed, then deleted
        history = nodes_seen.of(name)
        assert ("MODIFIED", True) in history and history[-1][0] == "DELETED", history
        assert history.index(("MODIFIED", True)) < len(history) - 1
    downs = [d for d in demo.daemon.decisions() if d["decision"] == "scale_down"]
    assert sorted(node for d in downs for node in d["nodes"]) == sorted(expected)
    assert all("idle" in d["reason"] for d in downs)
    assert demo.im_calls() == {"power_on": 1, "power_off": len(downs)}
    summary = demo.summary(finished=True, real_seconds=0)
    assert (summary.jobs, summary.jobs_completed, summary.evictions) == (4, 4, 0)
    # Two VMs for at least boot (60) + work (30) + idle (90) virtual seconds each.
    assert summary.node_hours >= 2 * 180 / 3600
    assert summary.pending_p95_s >= 60  # the pods waited for a boot
    im.close()

    # The user's view of the same deployment: a kubeconfig for kubectl ...
    done = deployer(deployer_home, "kubeconfig", "path", "--json")
    assert done.returncode == 0, done.stderr
    config = Path(json.loads(done.stdout)["kubeconfig"])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    if KUBECTL:
        listed = subprocess.run(
            [KUBECTL, "get", "jobs"],
            env={**os.environ, "KUBECONFIG": str(config)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0 and listed.stdout.count("job-") == 4, listed.stderr

    # ... and destroy stops the daemon and the sandbox and forgets them.
    sandbox_pid = SandboxServer(paths, "path").status().pid
    done = deployer(deployer_home, "destroy", "path", "--yes")
    assert done.returncode == 0, done.stderr
    assert SandboxServer(paths, "path").status() is None and SandboxDaemon(paths, "path").status() is None
    assert not sandbox_dir(paths, "path").exists()
    # It was started from this process (demo.create): reap it, so that gone means gone.
    eventually("the sandbox process ended", lambda: os.waitpid(sandbox_pid, os.WNOHANG)[0] == sandbox_pid, 10)
