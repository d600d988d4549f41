"""``deployer demo``: elasticity on a laptop. A local cluster (real local IM, Dummy VMs), its sandbox
Kubernetes API, the real daemon scaling it, and a short burst of Jobs from a trace.

Called by ``deployer.cli.demo_cmds`` (which renders the views) and by the end-to-end test. The cluster is
made with ``deployer create`` and removed with ``deployer destroy``, run as subprocesses so the demo goes
through exactly the commands a user runs. The sandbox and the daemon share one accelerated clock
(``deployer.clock``): boot times, run times, idle times and cooldowns all pass ``speed`` times faster, and
every figure here is in virtual seconds. Only the IM's own latency stays real (an IM call of 1 s looks
like ``speed`` seconds), which makes the demo a little pessimistic, never optimistic.

Each job of the trace becomes a Job whose pod requests the job's CPU and memory (and GPUs), runs
``sleep <duration>`` (and says so in ``RUN_SECONDS_ANNOTATION``) and, with an ``arch``, selects nodes of
that architecture.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import requests
import yaml

from deployer.clock import ScaledClock
from deployer.errors import RemoteError
from deployer.paths import Paths, ensure_private_dir
from deployer.sandbox.control_plane import RUN_SECONDS_ANNOTATION
from deployer.sandbox.kubelets import VMLife, node_hours
from deployer.sandbox.processes import SandboxDaemon, SandboxServer, forget_sandbox, read_objects
from deployer.sim.run import percentile
from deployer.sim.trace import TraceJob

DEFAULT_SPEED = 10.0
GROUP = "wn"
# A burst the default group answers with three VMs in one IM call, and two late jobs that arrive while
# they boot (two pods of 900m fit on a node of 2 CPUs).
DEFAULT_TRACE: tuple[TraceJob, ...] = (
    *(TraceJob(submit_s=0.0, cpu_m=900, memory_mib=512, duration_s=60.0 + 30 * i) for i in range(6)),
    TraceJob(submit_s=40.0, cpu_m=900, memory_mib=512, duration_s=90.0),
    TraceJob(submit_s=45.0, cpu_m=900, memory_mib=512, duration_s=60.0),
)
DEMO_SPEC: dict[str, Any] = {
    "cloud": "local",
    "oscar": {"enabled": False},
    "elasticity": {"idle_time": 120, "batch_idle": 5, "batch_max": 15},
    "worker_groups": [
        {"name": GROUP, "cpus": 2, "memory": "4 GiB", "min": 0, "max": 4, "initial": 0, "boot_seconds": 60}
    ],
}
NAMESPACE = "default"
_IM_CALLS = re.compile(r"^deployer_power_call_seconds_count\{([^}]*)\}\s+([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True)
class NodeView:
    name: str
    group: str
    state: str  # booting (VM, no node yet), NotReady, Ready, draining (cordoned), removing (node deleted)


@dataclass(frozen=True)
class DemoView:
    """What the demo shows at one moment (virtual seconds since the first job)."""

    elapsed_s: float
    submitted: int
    completed: int
    pending: tuple[str, ...]
    running: int
    nodes: tuple[NodeView, ...]
    decisions: tuple[dict[str, Any], ...]


@dataclass
class DemoSummary:
    jobs: int
    jobs_completed: int
    node_hours: float
    pending_p95_s: float
    evictions: int
    im_calls: int
    duration_s: float  # virtual
    real_seconds: float
    speed: float
    cluster: str
    finished: bool  # every job done and every worker VM removed before the deadline

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Demo:
    paths: Paths
    jobs: Sequence[TraceJob] = DEFAULT_TRACE
    speed: float = DEFAULT_SPEED
    cluster: str = field(default_factory=lambda: f"demo-{secrets.token_hex(3)}")
    spec: dict[str, Any] = field(default_factory=lambda: dict(DEMO_SPEC))

    def __post_init__(self) -> None:
        self.sandbox = SandboxServer(self.paths, self.cluster, speed=self.speed)
        self.daemon = SandboxDaemon(self.paths, self.cluster)
        self._http = requests.Session()
        self._http.trust_env = False  # loopback only: never through a proxy from the environment
        self._url = ""
        self._clock: ScaledClock | None = None
        self._start = 0.0
        self._submitted = 0
        # Pod name -> seconds it waited to start; kept here because the pod collector deletes the pods of
        # removed nodes.
        self._waits: dict[str, float] = {}

    # -- life cycle -------------------------------------------------------------------------------------

    def create(self) -> None:
        """The local cluster (through ``deployer create``), its sandbox at ``speed`` and the daemon."""
        spec_file = ensure_private_dir(self.paths.state_dir / "demo") / f"{self.cluster}.yaml"
        spec_file.write_text(yaml.safe_dump({**self.spec, "name": self.cluster}))
        _deployer("create", str(spec_file), "--name", self.cluster, "--json")
        forget_sandbox(self.paths, self.cluster)  # create started it on the real clock; ours is faster
        self._url = self.sandbox.start().url
        self._clock = self.sandbox.clock()
        self.daemon.start(wait=120)

    def destroy(self) -> None:
        _deployer("destroy", self.cluster, "--yes")

    def start_clock(self) -> None:
        self._start = self.now()

    def now(self) -> float:
        assert self._clock is not None, "create() first"
        return self._clock.time()

    @property
    def elapsed(self) -> float:
        return self.now() - self._start

    # -- the workload -----------------------------------------------------------------------------------

    def submit_due(self) -> int:
        """Submit the jobs whose time has come; returns how many were submitted so far."""
        while self._submitted < len(self.jobs) and self.jobs[self._submitted].submit_s <= self.elapsed:
            manifest = job_manifest(self._submitted, self.jobs[self._submitted])
            self._post(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", manifest)
            self._submitted += 1
        return self._submitted

    # -- observing --------------------------------------------------------------------------------------

    def view(self) -> DemoView:
        pods = self._get("/api/v1/pods")["items"]
        nodes = {n["metadata"]["name"]: n for n in self._get("/api/v1/nodes")["items"]}
        jobs = self._get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")["items"]
        now = self.now()
        for pod in pods:
            if pod["metadata"].get("namespace") == NAMESPACE:
                self._waits[pod["metadata"]["name"]] = _pending_seconds(pod, now)
        return DemoView(
            elapsed_s=self.elapsed,
            submitted=self._submitted,
            completed=sum(1 for job in jobs if _complete(job)),
            pending=tuple(sorted(p["metadata"]["name"] for p in pods if _phase(p) == "Pending")),
            running=sum(1 for p in pods if _phase(p) == "Running"),
            nodes=tuple(_node_views(nodes, self.lives())),
            decisions=tuple(self.daemon.decisions()),
        )

    def lives(self) -> list[VMLife]:
        saved = read_objects(self.sandbox.root) or {}
        return [VMLife(**life) for life in saved.get("vms") or []]

    def finished(self, view: DemoView) -> bool:
        """Every job submitted and complete, and every worker VM gone."""
        return (
            view.completed == len(self.jobs)
            and view.submitted == len(self.jobs)
            and not any(life.gone_at is None for life in self.lives())
        )

    def summary(self, *, finished: bool, real_seconds: float) -> DemoSummary:
        view = self.view()
        now = self.now()
        waits = sorted(self._waits.values())
        saved = read_objects(self.sandbox.root) or {}
        return DemoSummary(
            jobs=len(self.jobs),
            jobs_completed=view.completed,
            node_hours=round(node_hours(self.lives(), now), 4),
            pending_p95_s=round(percentile(waits, 0.95), 1),
            evictions=int((saved.get("api") or {}).get("evictions", 0)),
            im_calls=sum(self.im_calls().values()),
            duration_s=round(now - self._start, 1),
            real_seconds=round(real_seconds, 1),
            speed=self.speed,
            cluster=self.cluster,
            finished=finished,
        )

    def im_calls(self) -> dict[str, int]:
        """Calls the daemon made to the IM by operation (power_on, power_off), from its metrics."""
        info = self.daemon.status()
        if info is None:
            return {}
        try:
            text = self._http.get(f"{info.url}/metrics", timeout=5).text
        except requests.RequestException:
            return {}
        calls: dict[str, int] = {}
        for labels, count in _IM_CALLS.findall(text):
            operation = re.search(r'operation="([^"]*)"', labels)
            if 'backend="im"' in labels and operation:
                calls[operation.group(1)] = calls.get(operation.group(1), 0) + int(float(count))
        return calls

    # -- the whole run ----------------------------------------------------------------------------------

    def run(
        self, on_view: Callable[[DemoView], None], *, timeout: float = 170.0, keep: bool = False
    ) -> DemoSummary:
        """Create, submit the trace while showing ``on_view`` every refresh, wait until the cluster is
        back to no workers (or ``timeout`` real seconds), summarise, and destroy unless ``keep``."""
        started = time.monotonic()
        try:
            self.create()
            self.start_clock()
            finished = False
            while time.monotonic() - started < timeout:
                self.submit_due()
                view = self.view()
                on_view(view)
                if self.finished(view):
                    finished = True
                    break
                time.sleep(0.25)
            return self.summary(finished=finished, real_seconds=time.monotonic() - started)
        finally:
            self.daemon.stop()
            if not keep:
                self.destroy()

    # -- HTTP -------------------------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            answer = self._http.request(method, f"{self._url}{path}", json=body, timeout=10)
        except requests.RequestException as err:
            raise RemoteError(f"the sandbox Kubernetes API at {self._url} did not answer: {err}") from err
        if answer.status_code >= 400:
            raise RemoteError(f"the sandbox Kubernetes API refused {method} {path}: {answer.text[:200]}")
        return dict(answer.json())


def job_manifest(index: int, job: TraceJob) -> dict[str, Any]:
    """A batch/v1 Job running trace job ``index`` once."""
    requests_: dict[str, str] = {"cpu": f"{job.cpu_m}m", "memory": f"{job.memory_mib}Mi"}
    if job.gpu:
        requests_["nvidia.com/gpu"] = str(job.gpu)
    seconds = f"{job.duration_s:g}"
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "work",
                "image": "busybox:1.36",
                "command": ["sleep", seconds],
                "resources": {"requests": requests_},
            }
        ],
    }
    if job.arch:
        pod_spec["nodeSelector"] = {"kubernetes.io/arch": job.arch}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"job-{index:03d}", "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {RUN_SECONDS_ANNOTATION: seconds}, "labels": {"app": "demo"}},
                "spec": pod_spec,
            },
        },
    }


def _deployer(*args: str) -> str:
    """Run a deployer command as the user would (same DEPLOYER_HOME, same interpreter)."""
    done = subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise RemoteError(f"`deployer {args[0]}` failed: {said[-1] if said else f'exit {done.returncode}'}")
    return done.stdout


def _phase(pod: dict[str, Any]) -> str:
    return str(pod["status"].get("phase", ""))


def _complete(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


def _seconds(timestamp: str) -> float:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def _pending_seconds(pod: dict[str, Any], now: float) -> float:
    """From creation to start (or to ``now`` for a pod still waiting)."""
    created = _seconds(pod["metadata"]["creationTimestamp"])
    started = pod["status"].get("startTime")
    return (_seconds(started) if started else now) - created


def _node_views(nodes: dict[str, dict[str, Any]], lives: Sequence[VMLife]) -> list[NodeView]:
    views = []
    for life in sorted(lives, key=lambda life: (life.group, life.seen_at)):
        if life.gone_at is not None:
            continue
        node = nodes.get(life.node)
        state = "removing" if node is None and life.ready_at is not None else _node_state(node)
        views.append(NodeView(life.node, life.group, state))
    return views


def _node_state(node: dict[str, Any] | None) -> str:
    if node is None:
        return "booting"
    conditions = node["status"].get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    if not ready:
        return "NotReady"
    return "draining" if node["spec"].get("unschedulable") else "Ready"
