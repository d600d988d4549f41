"""Run a trace under one or all policies and reduce each run to the figures users compare.

``simulate()`` is the entry point of the ``simulate`` command and of the benchmark scripts. The figures
(``SimResult.to_dict()``) are: node-hours from each power-on request to the end of its power-off (boot and
shutdown included), cost, the lower bound (requested cpu-seconds over the largest node's cpus), pending
time percentiles (start minus submit; a placeable pod that never started counts up to the end of the run),
evictions of running pods by a scale-down, IM calls and unplaceable pods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from deployer.core.elasticity.from_spec import groups_from_spec, settings_from_spec
from deployer.core.elasticity.model import ElasticitySettings, NodeGroup, Resources
from deployer.core.spec import ClusterSpec
from deployer.errors import UserError
from deployer.sim.clues import CluesPolicy, CluesSettings
from deployer.sim.engine import Policy, ScaleEvent, SimConfig, Simulation, Timeline
from deployer.sim.policies import DaemonTiming, DeployerPolicy, Planner, StaticPolicy
from deployer.sim.trace import TraceJob

POLICIES = ("deployer", "clues", "static-max", "static-min")


@dataclass(frozen=True)
class PolicySettings:
    """The knobs of every policy for one run: ours from the spec's elasticity section, CLUES's own."""

    elasticity: ElasticitySettings = field(default_factory=ElasticitySettings)
    timing: DaemonTiming = field(default_factory=DaemonTiming)
    clues: CluesSettings = field(default_factory=CluesSettings)
    planner: Planner | None = None  # None: the core plan(); tests inject recording wrappers


@dataclass(frozen=True)
class SimResult:
    policy: str
    jobs: int
    jobs_completed: int
    node_hours: float
    cost: float
    lower_bound_node_hours: float
    pending_p50_s: float
    pending_p95_s: float
    pending_mean_s: float
    pending_max_s: float
    peak_nodes: int
    evictions: int
    im_calls: int
    unplaceable: int
    decisions: int
    failed_boots: int
    rejected_actions: int
    settled: bool
    end_s: float
    node_hours_by_group: dict[str, float]
    timeline: Timeline | None = None
    scale_events: tuple[ScaleEvent, ...] = ()
    group_costs: dict[str, float] = field(default_factory=dict)  # cost per node-hour, for plots

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``simulate --json``: plain numbers, rounded for stable output."""
        data = {
            "policy": self.policy,
            "jobs": self.jobs,
            "jobs_completed": self.jobs_completed,
            "node_hours": round(self.node_hours, 3),
            "cost": round(self.cost, 3),
            "lower_bound_node_hours": round(self.lower_bound_node_hours, 3),
            "vs_lower_bound": round(self.node_hours / self.lower_bound_node_hours, 3)
            if self.lower_bound_node_hours
            else None,
            "pending_p50_s": round(self.pending_p50_s, 1),
            "pending_p95_s": round(self.pending_p95_s, 1),
            "pending_mean_s": round(self.pending_mean_s, 1),
            "pending_max_s": round(self.pending_max_s, 1),
            "peak_nodes": self.peak_nodes,
            "evictions": self.evictions,
            "im_calls": self.im_calls,
            "unplaceable": self.unplaceable,
            "decisions": self.decisions,
            "failed_boots": self.failed_boots,
            "rejected_actions": self.rejected_actions,
            "settled": self.settled,
            "end_s": round(self.end_s, 1),
            "node_hours_by_group": {k: round(v, 3) for k, v in sorted(self.node_hours_by_group.items())},
        }
        return data


def make_policy(name: str, settings: PolicySettings) -> Policy:
    if name == "deployer":
        return DeployerPolicy(settings.elasticity, settings.timing, settings.planner)
    if name == "clues":
        return CluesPolicy(settings.clues)
    if name in ("static-max", "static-min"):
        return StaticPolicy(at_max=name == "static-max")
    raise UserError(f"--policy {name}: unknown policy; choose one of {', '.join(POLICIES)}")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); 0 for no values."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def lower_bound_node_hours(groups: Sequence[NodeGroup], jobs: Sequence[TraceJob]) -> float:
    largest = max((g.shape.cpu_m for g in groups), default=0)
    if largest <= 0:
        return 0.0
    return sum(job.cpu_m * job.duration_s for job in jobs) / largest / 3600


def simulate(
    groups: tuple[NodeGroup, ...],
    jobs: list[TraceJob],
    policy: str,
    config: SimConfig | None = None,
    settings: PolicySettings | None = None,
) -> SimResult:
    """Replay ``jobs`` on a cluster of ``groups`` under ``policy``; deterministic for ``config.seed``."""
    if not groups:
        raise UserError("the spec defines no worker or edge group to simulate")
    # The planner expects the shutdown time the simulated power managers take (break-even idle policy).
    shutdown = (config or SimConfig()).shutdown_seconds
    groups = tuple(replace(g, shutdown_seconds=shutdown) for g in groups)
    sim = Simulation(groups, jobs, make_policy(policy, settings or PolicySettings()), config).run()
    return summarize(sim)


def summarize(sim: Simulation) -> SimResult:
    unplaceable = {pod.uid for pod in sim.unplaceable}
    waits = sorted(
        (pod.started_at if pod.started_at is not None else max(sim.end_time, pod.job.submit_s))
        - pod.job.submit_s
        for pod in sim.pods
        if pod.uid not in unplaceable
    )
    node_hours = {name: seconds / 3600 for name, seconds in sim.node_seconds.items()}
    costs = {g.name: g.cost_per_hour for g in sim.groups}
    placeable = [pod.job for pod in sim.pods if pod.uid not in unplaceable]
    return SimResult(
        policy=sim.policy.name,
        jobs=len(sim.pods),
        jobs_completed=sim.completed,
        node_hours=sum(node_hours.values()),
        cost=sum(hours * costs[name] for name, hours in node_hours.items()),
        lower_bound_node_hours=lower_bound_node_hours(sim.groups, placeable),
        pending_p50_s=percentile(waits, 0.50),
        pending_p95_s=percentile(waits, 0.95),
        pending_mean_s=sum(waits) / len(waits) if waits else 0.0,
        pending_max_s=waits[-1] if waits else 0.0,
        peak_nodes=sim.peak_nodes,
        evictions=sim.counters.evictions,
        im_calls=sim.counters.im_calls,
        unplaceable=len(unplaceable),
        decisions=sim.counters.decisions,
        failed_boots=sim.counters.failed_boots,
        rejected_actions=sim.counters.rejected_actions,
        settled=sim.settled,
        end_s=sim.end_time,
        node_hours_by_group=node_hours,
        timeline=sim.timeline,
        scale_events=tuple(sim.scale_events),
        group_costs=costs,
    )


def compare(
    groups: tuple[NodeGroup, ...],
    jobs: list[TraceJob],
    config: SimConfig | None = None,
    settings: PolicySettings | None = None,
    policies: Sequence[str] = POLICIES,
) -> list[SimResult]:
    """Every policy on the same trace, cluster and seed."""
    return [simulate(groups, jobs, name, config, settings) for name in policies]


def inputs_from_spec(
    spec: ClusterSpec, idle_time: float | None = None, max_booting: int | None = None
) -> tuple[tuple[NodeGroup, ...], PolicySettings]:
    """Groups and policy settings from a cluster spec, as the daemon would build them.

    Nodes are modelled without the kubelet's system reservation, so that a pod asking for a whole node fits
    (as in CLUES's reference runs) and the lower bound compares like with like. ``idle_time`` and
    ``max_booting`` override the spec for our policy and CLUES alike, so both are compared on equal terms.
    """
    groups = groups_from_spec(spec, reserved=Resources())
    elasticity = settings_from_spec(spec)
    section = spec.elasticity
    idle = section.idle_time if idle_time is None else idle_time
    booting = section.max_booting if max_booting is None else max_booting
    elasticity = replace(elasticity, idle_time=idle, max_booting=booting)
    timing = DaemonTiming(section.batch_idle, section.batch_max, section.resync_period)
    return groups, PolicySettings(
        elasticity, timing, CluesSettings(idle_time=idle, max_booting_nodes=booting)
    )
