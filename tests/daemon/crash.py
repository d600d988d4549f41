"""Crash scenarios for the elasticity daemon run as a real process (``python -m deployer daemon run``): the
real local IM behind a recording proxy, the loopback Kubernetes API, and a test kubelet/scheduler.

A scenario sets up a world (a pending pod to scale up for, or an underused node to scale down), starts the
daemon and SIGKILLs it at chosen steps, each seen as an HTTP request to the IM or the Kubernetes API,
either as it arrives ("received": the change is not made) or once it is made but before the daemon gets the
answer ("applied"). After each kill a new process starts on the same state directory. Once the world has
settled, ``Outcome`` counts what must stay zero: duplicate VMs, orphan VMs (a VM whose Node is gone), nodes
left cordoned, running jobs evicted. Used by tests/daemon/test_crash.py and bench/faults_daemon.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deployer.adapters.im.client import IMClient
from deployer.adapters.power.im import IMPowerManager
from deployer.adapters.state.nodes import NodeStateStore
from deployer.paths import resolve_paths
from tests.daemon.conftest import (
    VM_CPU,
    VM_MEMORY,
    IMCluster,
    worker_group_data,
    worker_vms,
    write_kubeconfig,
)
from tests.daemon.im_proxy import IMProxy
from tests.fixtures.kube_api import FakeKubeAPI
from tests.fixtures.kube_cluster import FakeControlPlane

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
CLUSTER = "crash"
# Fast rounds; an underused node goes at once (1 s), boots are never timed out during a scenario.
ELASTICITY = {
    "idle_time": 1,
    "idle_policy": "fixed",
    "resync_period": 0.5,
    "batch_idle": 0.2,
    "batch_max": 1,
    "provision_timeout": 600,
    "scale_down_underutilized": True,
}


@dataclass(frozen=True)
class Step:
    """A request of the daemon to kill it at: to the IM or the Kubernetes API, by method and path."""

    name: str
    target: str  # "im" | "kube" | "state" (a record in the daemon's database, in ``phase``)
    method: str
    path: str  # regular expression, full match
    phase: str  # "received" | "applied" | a node phase


def _im(name: str, phase: str, method: str = "POST", path: str = r"/infrastructures/[^/]+") -> Step:
    return Step(name, "im", method, path, phase)


# A scale-up is one relative add (POST a RADL deploy); a scale-down removes the VMs by id (DELETE).
_REMOVE = ("DELETE", r"/infrastructures/[^/]+/vms/.+")
SCALE_UP_STEPS = (
    _im("before-im-add", "received"),
    _im("after-im-add", "applied"),
    # Seen in the daemon's state database rather than on the wire: its POWERING_ON record is written.
    Step("after-record", "state", "", "", "powering_on"),
)
SCALE_DOWN_STEPS = (
    Step("cordon-sent", "kube", "PATCH", r"/api/v1/nodes/.+", "received"),
    Step("cordon-made", "kube", "PATCH", r"/api/v1/nodes/.+", "applied"),
    Step("eviction-made", "kube", "POST", r".*/eviction", "applied"),
    _im("before-im-remove", "received", *_REMOVE),
    _im("after-im-remove", "applied", *_REMOVE),
    Step("node-delete-sent", "kube", "DELETE", r"/api/v1/nodes/.+", "received"),
    Step("node-delete-made", "kube", "DELETE", r"/api/v1/nodes/.+", "applied"),
)
SCENARIOS = {"scale-up": SCALE_UP_STEPS, "scale-down": SCALE_DOWN_STEPS}


@dataclass
class Outcome:
    kills: list[str] = field(default_factory=list)  # the steps the daemon was killed at
    settled: bool = False
    duplicate_vms: int = 0
    orphan_vms: int = 0
    nodes_left_cordoned: int = 0
    running_jobs_evicted: int = 0


class Daemon:
    """One ``deployer daemon run`` process; its log goes to ``home/daemon.log``."""

    def __init__(self, argv: Sequence[str], home: Path) -> None:
        self.argv = list(argv)
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        env = {**os.environ, "DEPLOYER_HOME": str(self.home), "PYTHONPATH": str(REPO)}
        log = (self.home / "daemon.log").open("ab")
        self.process = subprocess.Popen(self.argv, env=env, stdout=log, stderr=log, cwd=self.home)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        if not self.alive:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


class KillSwitch:
    """Kills ``daemon`` the first time it makes the request of ``step`` (from inside the proxy or the fake
    API, so the request stays unanswered); disarmed after firing."""

    def __init__(self, proxy: IMProxy, api: FakeKubeAPI) -> None:
        self._lock = threading.Lock()
        self._armed: tuple[Step, Daemon] | None = None
        self.fired = threading.Event()
        proxy.hook = lambda method, path, phase: self._seen("im", method, path, phase)
        api.hook = lambda method, path, phase: self._seen("kube", method, path, phase)

    def arm(self, step: Step, daemon: Daemon) -> None:
        with self._lock:
            self.fired.clear()
            self._armed = (step, daemon)

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def _seen(self, target: str, method: str, path: str, phase: str) -> None:
        with self._lock:
            if self._armed is None:
                return
            step, daemon = self._armed
            if (step.target, step.method, step.phase) != (target, method, phase):
                return
            if not re.fullmatch(step.path, path):
                return
            self._armed = None
            daemon.kill()
            self.fired.set()
        if phase == "received":  # the process is dead: its request never reaches the server
            raise ConnectionAbortedError(f"daemon killed before its {method} {path} was served")


class ControlPlane:
    """The test's kubelets and scheduler: a VM that exists gets its Node (``wn-<IM id>``), pending pods
    are placed, and evicted pods finish terminating. Runs on a thread until stopped."""

    def __init__(self, api: FakeKubeAPI, im: IMCluster) -> None:
        self.api = api
        self.plane = FakeControlPlane(api)
        self.im = im
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-control-plane", daemon=True)
        self.removed: set[str] = set()  # Node names the daemon deleted: their VM must not come back
        self.boots = threading.Event()  # cleared: new VMs are still booting (their kubelets wait)
        self.boots.set()

    def start(self) -> ControlPlane:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def step(self) -> None:
        names = {node["metadata"]["name"] for node in self.api.list("Node")}
        for vm in worker_vms(self.im) if self.boots.is_set() else ():
            name = f"wn-{vm}"
            if name not in names and name not in self.removed:
                self.plane.register_node(name, "wn", cpu=VM_CPU, memory=VM_MEMORY)
        self.plane.schedule()
        self.plane.reap_terminating()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.step()
            except Exception as err:  # a Node deleted between list and register, an IM hiccup: next tick
                log.debug("control plane tick failed: %s", err)


@dataclass
class World:
    """Everything one scenario runs against; ``home`` is the daemon's state directory."""

    im: IMCluster
    im_url: str  # the proxy's
    auth_file: Path
    api: FakeKubeAPI
    proxy: IMProxy
    home: Path

    def argv(self, *, leader: bool = False, lease_seconds: float = 3) -> list[str]:
        spec = self.home / "spec.yaml"
        data = {**worker_group_data(CLUSTER), "elasticity": ELASTICITY}
        data.pop("name")
        spec.write_text(yaml.safe_dump(data))
        kubeconfig = write_kubeconfig(self.home, self.api.url)
        argv = [
            sys.executable,
            "-m",
            "deployer",
            "-v",
            "daemon",
            "run",
            "--cluster",
            CLUSTER,
            "--spec",
            str(spec),
        ]
        argv += ["--im-url", self.im_url, "--auth-file", str(self.auth_file), "--infra-id", self.im.infra_id]
        argv += ["--kubeconfig", str(kubeconfig), "--drain-timeout", "5"]
        if leader:
            argv += ["--leader-elect", "--lease-namespace", "default", "--lease-seconds", str(lease_seconds)]
        else:
            argv += ["--no-leader-elect"]
        return argv


def prepare(world: World, kind: str, entries: list) -> None:
    """The starting point of a scenario: a pending pod (scale-up), or two workers, one running a job and
    one almost empty (scale-down, as an underused node: its small pod must be evicted)."""
    if kind == "scale-up":
        world.api.add_pod("work-0", cpu="1500m", memory="256Mi", unschedulable=True)
        return
    power = IMPowerManager(IMClient(world.im_url, entries, retries=1), world.im.infra_id)
    busy, light = (
        f"wn-{vm}" for vm in sorted((p.vm_id or "" for p in power.power_on(world.im.group, 2)), key=int)
    )
    plane = FakeControlPlane(world.api)
    for name in (busy, light):
        plane.register_node(name, "wn", cpu=VM_CPU, memory=VM_MEMORY)
    world.api.add_pod("job-0", node=busy, cpu="1", owner_kind="Job")
    world.api.add_pod("web-0", node=light, cpu="100m", labels={"app": "web"})


def settled(world: World, kind: str) -> bool:
    nodes = world.api.list("Node")
    pods = world.api.list("Pod")
    if any(node["spec"].get("unschedulable") for node in nodes):
        return False
    if kind == "scale-up":
        return len(worker_vms(world.im)) >= 1 and all(p["spec"].get("nodeName") for p in pods)
    return len(worker_vms(world.im)) == 1 and len(nodes) == 1


def measure(world: World, kind: str, removed: set[str]) -> Outcome:
    vms = worker_vms(world.im)
    names = {node["metadata"]["name"] for node in world.api.list("Node")}
    outcome = Outcome()
    outcome.duplicate_vms = max(0, len(vms) - 1)
    outcome.orphan_vms = sum(1 for vm in vms if f"wn-{vm}" in removed or f"wn-{vm}" not in names)
    outcome.nodes_left_cordoned = sum(
        1 for node in world.api.list("Node") if node["spec"].get("unschedulable")
    )
    job = world.api.get("Pod", "default", "job-0")
    evicted_job = any(r.path.endswith("/pods/job-0/eviction") for r in world.api.requests)
    if kind == "scale-down":
        outcome.running_jobs_evicted = int(evicted_job or job is None or job["status"]["phase"] != "Running")
    return outcome


def _kill_on_record(world: World, step: Step, daemon: Daemon, switch: KillSwitch, timeout: float) -> None:
    db = resolve_paths({"DEPLOYER_HOME": str(world.home)}).state_db
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.alive:
        if db.exists():
            records = NodeStateStore(db, CLUSTER).load().records.values()
            if any(record.phase.value == step.phase for record in records):
                switch.disarm()
                daemon.kill()
                switch.fired.set()
                return
        time.sleep(0.05)


def run_scenario(
    world: World,
    kind: str,
    kill_at: Sequence[Step],
    entries: list,
    *,
    step_timeout: float = 30,
    settle_timeout: float = 60,
    on_start: Callable[[Daemon], None] | None = None,
) -> Outcome:
    """Prepare the world, run the daemon killing it at each of ``kill_at`` in turn (a step that does not
    come within ``step_timeout`` is skipped), then let a last daemon settle the world and measure."""
    prepare(world, kind, entries)
    plane = ControlPlane(world.api, world.im)
    if kind == "scale-up":
        plane.boots.clear()  # the new VM boots through every crash: adoption, not a second VM
    plane.start()
    switch = KillSwitch(world.proxy, world.api)
    deleted: set[str] = set()

    def track_deletes(method: str, path: str, phase: str) -> None:
        switch._seen("kube", method, path, phase)
        if method == "DELETE" and phase == "applied" and path.startswith("/api/v1/nodes/"):
            deleted.add(path.rsplit("/", 1)[1])
            plane.removed.add(path.rsplit("/", 1)[1])

    world.api.hook = track_deletes
    kills: list[str] = []
    daemon: Daemon | None = None
    try:
        for step in kill_at:
            daemon = Daemon(world.argv(), world.home)
            switch.arm(step, daemon)
            daemon.start()
            if on_start is not None:
                on_start(daemon)
            if step.target == "state":
                _kill_on_record(world, step, daemon, switch, step_timeout)
            if switch.fired.wait(step_timeout):
                kills.append(step.name)
            switch.disarm()
            daemon.kill()
        plane.boots.set()
        daemon = Daemon(world.argv(), world.home).start()
        deadline = time.monotonic() + settle_timeout
        calm_since: float | None = None
        while time.monotonic() < deadline:
            if settled(world, kind):
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= 2.0:  # stays settled for several daemon rounds
                    break
            else:
                calm_since = None
            time.sleep(0.2)
        outcome = measure(world, kind, deleted)
        outcome.settled = calm_since is not None
        outcome.kills = kills
        return outcome
    finally:
        if daemon is not None:
            daemon.stop()
        plane.stop()
        world.proxy.hook = None
        world.api.hook = None
