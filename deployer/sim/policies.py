"""The elasticity policies the simulator compares: ours (the core ``plan()``), and the static baselines.

``DeployerPolicy`` drives the same pure ``plan()`` as the daemon, the way the daemon does: a new pending
pod opens a batching window (1 s idle, 10 s max), and a periodic resync runs regardless. It translates the
simulated cluster into a ``Snapshot`` (Ready nodes and their pods, pending pods) and acts as the actuator:
each action goes to the simulated power managers, then the matching ``record_*`` transition is written to
the ``ElasticityState`` that the next round reads. The CLUES baseline lives in ``deployer.sim.clues``.
Called by ``deployer.sim.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deployer.core.elasticity.batching import Batcher
from deployer.core.elasticity.lifecycle import (
    record_draining,
    record_failed,
    record_powering_off,
    record_powering_on,
)
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    Node,
    NodeGroup,
    Plan,
    Snapshot,
)
from deployer.core.elasticity.planner import plan
from deployer.core.elasticity.runtimes import RuntimeModel, learn, workload_class
from deployer.core.elasticity.scheduling import template_labels
from deployer.sim.engine import Phase, SimNode, SimPod, Simulation, group_capacity, pod_view

Planner = Callable[
    [Snapshot, Sequence[NodeGroup], ElasticityState, ElasticitySettings, float, RuntimeModel | None], Plan
]

_RESYNC, _BATCH = "resync", "batch"


@dataclass(frozen=True)
class DaemonTiming:
    """When the daemon calls ``plan()``: the elasticity section's batching window and resync period."""

    batch_idle: float = 1.0
    batch_max: float = 10.0
    resync_period: float = 30.0


class DeployerPolicy:
    name = "deployer"

    def __init__(
        self,
        settings: ElasticitySettings,
        timing: DaemonTiming | None = None,
        planner: Planner | None = None,
    ) -> None:
        self.settings = settings
        self.timing = timing or DaemonTiming()
        self.planner = planner or plan
        self.state = ElasticityState()
        self.runtimes = RuntimeModel()  # learned from the pods that finished, as the daemon learns
        self._batcher = Batcher(self.timing.batch_idle, self.timing.batch_max)
        self._batch_armed = False
        self.unplaceable: set[str] = set()  # pod uids the planner reported as never placeable

    def floor(self, group: NodeGroup) -> int:
        return group.min_size

    def start(self, sim: Simulation) -> None:
        for group in sim.groups:
            sim.start_on(group.name, group.min_size)
        sim.set_timer(self.timing.resync_period, _RESYNC)

    def on_pending(self, sim: Simulation, pod: SimPod) -> None:
        self._batcher.add(sim.now)
        if not self._batch_armed:
            self._batch_armed = True
            sim.set_timer(self.timing.batch_idle, _BATCH)

    def on_finished(self, sim: Simulation, pod: SimPod) -> None:
        finished = (workload_class(pod_view(pod, None)), sim.now - pod.bound_at)
        self.runtimes = learn(self.runtimes, (finished,))

    def on_timer(self, sim: Simulation, tag: str) -> None:
        if tag == _RESYNC:
            sim.set_timer(self.timing.resync_period, _RESYNC)
            self.decide(sim)
            return
        self._batch_armed = False
        due = self._batcher.deadline()
        if due is None:
            return
        if sim.now + 1e-9 < due:
            self._batch_armed = True
            sim.set_timer(due - sim.now, _BATCH)
            return
        self.decide(sim)

    def decide(self, sim: Simulation) -> Plan:
        """One reconcile: snapshot, plan, act, record. The batch window closes here."""
        self._batcher.reset()
        now = sim.now
        result = self.planner(snapshot_of(sim), sim.groups, self.state, self.settings, now, self.runtimes)
        sim.counters.decisions += 1
        state = result.state if result.state is not None else self.state
        for failure in result.failures:
            sim.mark_failed(failure.node)
            state = record_failed(state, failure, now)
        for down in result.scale_downs:
            state = record_draining(state, down.group, down.nodes, now)
            sim.drain_and_power_off(down.nodes, down.reason)
            state = record_powering_off(state, down.group, down.nodes, now)
        for up in result.scale_ups:
            group = sim.group_by_name.get(up.group)
            if group is not None and group.kind is not GroupKind.CLOUD:
                names = sim.power_on(up.group, names=up.nodes, reason=up.reason)
            else:
                names = sim.power_on(up.group, up.count, reason=up.reason)
            state = record_powering_on(state, up.group, names, now)
        self.unplaceable.update(u.pod_uid for u in result.unplaceable)
        self.state = state
        return result


def snapshot_of(sim: Simulation) -> Snapshot:
    """What the daemon's informers would show: the Ready nodes with their pods, the nodes shutting down
    (cordoned), and the pending pods.

    A node stays visible until it is off, as in the daemon: its Node object goes only after the power-off
    call returned (cloud) or once the board stops reporting (edge). Dropping it earlier would tell the
    planner the VM is gone, and it would fill the slot again while the old node still holds it.
    Views are cached on the simulated objects and rebuilt only when they change, so a snapshot of thousands
    of pods costs a tuple of references.
    """
    nodes = []
    pods = []
    for node in sim.ready:
        nodes.append(_node_view(node))
        for pod in node.running.values():
            if pod.view is None:
                pod.view = pod_view(pod, node.name)
            pods.append(pod.view)
    nodes.extend(_node_view(node) for node in sim.nodes.values() if node.phase is Phase.SHUTTING_DOWN)
    for pod in sim.pending_pods():
        if pod.view is None:
            pod.view = pod_view(pod, None)
        pods.append(pod.view)
    return Snapshot(nodes=tuple(nodes), pods=tuple(pods))  # type: ignore[arg-type]


def _node_view(node: SimNode) -> Node:
    view = node.view
    if view is None:
        group = node.group
        labels = template_labels(group)
        labels["kubernetes.io/hostname"] = node.name
        view = node.view = Node(
            name=node.name,
            group=group.name,
            allocatable=group.shape,
            labels=labels,
            taints=group.taints,
            unschedulable=node.phase is Phase.SHUTTING_DOWN,  # cordoned before its drain
            created_at=node.booted_at,
        )
    return view  # type: ignore[return-value]


class StaticPolicy:
    """``static-max``: every node on all the time. ``static-min``: the groups' minimum only. Never acts."""

    def __init__(self, at_max: bool) -> None:
        self.at_max = at_max
        self.name = "static-max" if at_max else "static-min"

    def floor(self, group: NodeGroup) -> int:
        return group_capacity(group) if self.at_max else group.min_size

    def start(self, sim: Simulation) -> None:
        for group in sim.groups:
            sim.start_on(group.name, self.floor(group))

    def on_pending(self, sim: Simulation, pod: SimPod) -> None:
        return None

    def on_timer(self, sim: Simulation, tag: str) -> None:
        return None

    def on_finished(self, sim: Simulation, pod: SimPod) -> None:
        return None
