"""A live cluster's pods as a workload trace (``deployer trace record``): what-if questions on real load.

Each pod created in the window becomes one row: its creation as the submission (relative to the first),
its run from start to the end of its last container (a pod still running: to the time of recording), the
scheduler's requests, the arch it is pinned to, ``job`` for Job and bare pods (never disrupted) and
``service`` for the rest, and its workload class (``deployer.core.elasticity.runtimes.workload_class``),
whose run times our policy learns in the simulator as the daemon does on the cluster. DaemonSet and mirror
pods are per-node, not workload; pods that never started have no run to replay. Called by the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployer.core.elasticity.model import OwnerKind
from deployer.core.elasticity.runtimes import workload_class
from deployer.sim.trace import TraceJob

if TYPE_CHECKING:  # the kubernetes client is imported only by the command that lists the pods
    from deployer.adapters.kube.history import PodRun

_PER_NODE = (OwnerKind.DAEMON_SET, OwnerKind.MIRROR)
_NEVER_DISRUPTED = (OwnerKind.JOB, OwnerKind.BARE)


@dataclass(frozen=True, slots=True)
class Recorded:
    """The trace and what was left out of it, for the command's summary."""

    jobs: list[TraceJob]
    still_running: int  # in the trace, their run cut at the time of recording
    not_started: int  # pending, or finished without ever running: no run to replay
    per_node: int  # DaemonSet and mirror pods
    before_window: int  # created before the window


def trace_from_runs(runs: Sequence[PodRun], now: float, since: float) -> Recorded:
    """The pods created in the ``since`` seconds before ``now`` as trace rows, in creation order."""
    rows: list[tuple[float, float, PodRun]] = []  # created, duration, run
    running = not_started = per_node = before = 0
    for run in runs:
        if run.pod.owner_kind in _PER_NODE:
            per_node += 1
        elif run.created_at < now - since:
            before += 1
        elif run.started_at is None or (run.finished and run.ended_at is None):
            not_started += 1
        else:
            if run.ended_at is None:
                running += 1
            ended = run.ended_at if run.ended_at is not None else now
            rows.append((run.created_at, max(ended - run.started_at, 1.0), run))
    first = min((created for created, _, _ in rows), default=now)
    jobs = [
        TraceJob(
            submit_s=round(created - first, 3),
            cpu_m=max(run.pod.requests.cpu_m, 1),  # a pod without requests still takes a slot
            memory_mib=run.pod.requests.memory_mib,
            duration_s=round(duration, 3),
            arch=run.arch,
            gpu=run.pod.requests.gpu,
            kind="job" if run.pod.owner_kind in _NEVER_DISRUPTED else "service",
            workload=workload_class(run.pod),
        )
        for created, duration, run in sorted(rows, key=lambda row: (row[0], row[2].pod.uid))
    ]
    return Recorded(jobs, running, not_started, per_node, before)
