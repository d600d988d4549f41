"""The discrete-event simulator: a virtual clock, a cluster of powered nodes, a pod scheduler, a policy.

Nothing ticks every second: the clock jumps from event to event (submissions, completions, nodes becoming
ready or off, the policy's own timers). The policy under test (``deployer.sim.policies``) acts only through
``power_on``, ``drain_and_power_off`` and ``mark_failed``, as the daemon acts through its power managers.

The scheduler binds pending pods to ready nodes with room (first fit, cheapest group first), respecting
arch, selectors and taints. Pending pods are kept in one FIFO queue per request shape, so a freed node only
tries the head of each queue: the cost of an event does not grow with the backlog. ``strict_fifo`` and
``queue_period`` reproduce the batch queue of CLUES's own simulator (no backfill; starts and ends on a
fixed step) for the calibration. Called by ``deployer.sim.run`` (the ``simulate`` command and the benchmark).
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from deployer.core.elasticity.model import GroupKind, NodeGroup, OwnerKind, Pod, Resources
from deployer.core.elasticity.runtimes import WORKLOAD_CLASS_LABEL
from deployer.core.elasticity.scheduling import ARCH_LABEL, label_mismatch, shortfall, template_labels
from deployer.sim.trace import TraceJob

# Event kinds, ordered so that at one instant completions free room before new pods are placed, and the
# policy looks at the cluster after the scheduler has acted.
_FINISH, _NODE_READY, _NODE_OFF, _SUBMIT, _TIMER, _QUEUE_FINISH, _QUEUE_TICK = range(7)


@dataclass(frozen=True)
class SimConfig:
    """How the simulated infrastructure behaves (the policy's own settings live with the policy)."""

    seed: int = 0
    boot_jitter: float = 1 / 3  # boot time uniform in boot_seconds * (1 +- jitter): cloud 180 s +- 60 s
    shutdown_seconds: float = 30.0
    boot_failure_rate: float = 0.0  # a failed boot never becomes Ready; the policy must notice
    strict_fifo: bool = False  # no backfill: the head of the queue blocks everyone behind it
    queue_period: float = 0.0  # 0: bind at once; >0: binds and job ends happen only on this step
    settle_cap: float = 4 * 3600.0  # give up waiting for the policy to settle this long after the last job
    record_timeline: bool = False  # keep per-event samples for plots


def group_capacity(group: NodeGroup) -> int:
    """How many nodes the group can have on: its max, and for edge groups no more than its boards."""
    return min(group.max_size, len(group.hosts)) if group.hosts else group.max_size


class Phase(str, Enum):
    OFF = "off"
    BOOTING = "booting"
    READY = "ready"
    SHUTTING_DOWN = "shutting_down"


class SimNode:
    """One node slot of a group: a cloud VM that may exist or an edge board that may be on."""

    __slots__ = (
        "booted_at",
        "cpu_free",
        "epoch",
        "gidx",
        "gpu_free",
        "group",
        "mem_free",
        "name",
        "on_since",
        "phase",
        "pods_free",
        "rank",
        "running",
        "view",
    )

    def __init__(self, name: str, group: NodeGroup, gidx: int, rank: tuple[float, int]) -> None:
        self.name = name
        self.group = group
        self.gidx = gidx  # position of the group in the simulation's group tuple
        self.rank = rank  # scheduler preference: cheapest group first, then slot order
        self.phase = Phase.OFF
        self.on_since = 0.0  # power-on request time of the current power cycle
        self.booted_at = 0.0
        self.epoch = 0  # bumped on every power cycle so that stale events are ignored
        self.running: dict[str, SimPod] = {}
        self.view: object | None = None  # a policy's cached representation of this node
        self._reset_capacity()

    def _reset_capacity(self) -> None:
        shape = self.group.shape
        self.cpu_free, self.mem_free, self.gpu_free, self.pods_free = (
            shape.cpu_m,
            shape.memory_mib,
            shape.gpu,
            shape.pods,
        )

    @property
    def is_on(self) -> bool:
        return self.phase is not Phase.OFF


class SimPod:
    __slots__ = ("bound_at", "job", "key", "node", "run", "seq", "started_at", "uid", "view")

    def __init__(self, seq: int, job: TraceJob) -> None:
        self.seq = seq
        self.uid = f"job-{seq}"
        self.job = job
        self.key = (job.cpu_m, job.memory_mib, job.gpu, job.arch)
        self.node: SimNode | None = None
        self.started_at: float | None = None  # first start, for the pending-time metric
        self.bound_at = 0.0  # start of the current run (a run evicted and placed again starts anew)
        self.run = 0  # bumped on every bind so that the completion of an evicted run is ignored
        self.view: object | None = None  # a policy's cached representation of this pod


class Policy(Protocol):
    """What the simulator needs from an elasticity policy."""

    name: str

    def start(self, sim: Simulation) -> None:
        """Power the initial nodes on (``sim.start_on``) and arm the first timers."""

    def on_pending(self, sim: Simulation, pod: SimPod) -> None:
        """A pod could not be placed and now waits (a watch event for an unschedulable pod)."""

    def on_timer(self, sim: Simulation, tag: str) -> None:
        """A timer armed with ``sim.set_timer`` fired."""

    def on_finished(self, sim: Simulation, pod: SimPod) -> None:
        """A pod ran to completion (the daemon sees it Succeeded, with its start and end times)."""

    def floor(self, group: NodeGroup) -> int:
        """How many nodes of the group this policy keeps on when there is no work."""


@dataclass
class ScaleEvent:
    time: float
    group: str
    delta: int  # +n powered on, -n powered off
    reason: str = ""


@dataclass
class Counters:
    evictions: int = 0
    im_calls: int = 0
    power_ons: int = 0
    power_offs: int = 0
    failed_boots: int = 0
    rejected_actions: int = 0  # power-ons above a group's max, drains of unknown nodes: policy bugs
    decisions: int = 0


@dataclass
class Timeline:
    """Samples taken after every event that changed something, for plots."""

    groups: tuple[str, ...]
    times: list[float] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    nodes_on: list[tuple[int, ...]] = field(default_factory=list)


class Simulation:
    """One run of one policy over one trace. Build, ``run()``, then read the results off the object."""

    def __init__(
        self,
        groups: tuple[NodeGroup, ...],
        jobs: list[TraceJob],
        policy: Policy,
        config: SimConfig | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.groups = groups
        self.group_by_name = {g.name: g for g in groups}
        self.jobs = jobs
        self.policy = policy
        self.now = 0.0
        self.rng = random.Random(self.config.seed)  # noqa: S311 - a simulation, not cryptography
        self.counters = Counters()
        self.scale_events: list[ScaleEvent] = []
        self.timeline = Timeline(tuple(g.name for g in groups)) if self.config.record_timeline else None
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self.nodes: dict[str, SimNode] = {}
        self.slots: dict[str, list[SimNode]] = {}
        for gidx, group in enumerate(groups):
            names = group.hosts or tuple(f"{group.name}-{i}" for i in range(1, group.max_size + 1))
            slots = [
                SimNode(name, group, gidx, (group.cost_per_hour, len(self.nodes) + i))
                for i, name in enumerate(names)
            ]
            self.slots[group.name] = slots
            self.nodes.update((n.name, n) for n in slots)
        self.on_count: dict[str, int] = {g.name: 0 for g in groups}  # nodes not off, per group
        self.peak_nodes = 0
        self.ready: list[SimNode] = []  # schedulable nodes in preference order
        self.pods = [SimPod(i, job) for i, job in enumerate(jobs)]
        self.pending_count = 0
        self._queues: dict[tuple, deque[SimPod]] = {}  # per-shape FIFO (or one queue when strict)
        self._fits_group: dict[tuple, tuple[bool, ...]] = {}  # shape -> may it ever run on group i
        self.unplaceable: list[SimPod] = []
        self.completed = 0
        self.last_finish = 0.0
        self.last_power_change = 0.0
        self.node_seconds: dict[str, float] = {g.name: 0.0 for g in groups}
        self.end_time = 0.0
        self.settled = True
        self._tick_armed = False

    # ------------------------------------------------------------------ event plumbing

    def _push(self, time: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, kind, self._seq, payload))

    def set_timer(self, delay: float, tag: str) -> None:
        """Call ``policy.on_timer(sim, tag)`` after ``delay`` seconds of virtual time."""
        self._push(self.now + delay, _TIMER, tag)

    def run(self) -> Simulation:
        for pod in self.pods:
            self._push(pod.job.submit_s, _SUBMIT, pod)
        self.policy.start(self)
        if self.timeline is not None:
            self._sample()  # the nodes a policy starts with
        last_submit = self.jobs[-1].submit_s if self.jobs else 0.0
        heap = self._heap
        while heap:
            time, kind, _, payload = heapq.heappop(heap)
            self.now = time
            if kind in (_FINISH, _QUEUE_FINISH):
                self._finish(payload)  # type: ignore[arg-type]
            elif kind == _SUBMIT:
                self._submit(payload)  # type: ignore[arg-type]
            elif kind == _TIMER:
                if self._done():
                    break
                if time > max(self.last_finish, last_submit) + self.config.settle_cap:
                    self.settled = False
                    break
                self.policy.on_timer(self, payload)  # type: ignore[arg-type]
            elif kind == _NODE_READY:
                self._node_ready(payload)  # type: ignore[arg-type]
            elif kind == _NODE_OFF:
                self._node_off(payload)  # type: ignore[arg-type]
            else:
                self._tick_armed = False
                self._full_pass()
            if self.timeline is not None:
                self._sample()
        self._close()
        return self

    def _done(self) -> bool:
        """All placeable work finished and the policy has nothing left to switch off."""
        if self.completed + len(self.unplaceable) < len(self.pods):
            return False
        if len(self.ready) != sum(self.on_count.values()):
            return False  # something is booting or shutting down
        return all(self.on_count[g.name] <= self.policy.floor(g) for g in self.groups)

    def _close(self) -> None:
        # A settled run ends with its last change; one cut at the cap ends there (the policy never settled).
        last_submit = self.jobs[-1].submit_s if self.jobs else 0.0
        self.end_time = (
            self.now if not self.settled else max(self.last_finish, self.last_power_change, last_submit)
        )
        for node in self.nodes.values():
            if node.is_on:
                self.node_seconds[node.group.name] += max(0.0, self.end_time - node.on_since)

    def _sample(self) -> None:
        timeline = self.timeline
        assert timeline is not None
        counts = tuple(self.on_count[g] for g in timeline.groups)
        if timeline.times and timeline.pending[-1] == self.pending_count and timeline.nodes_on[-1] == counts:
            return
        timeline.times.append(self.now)
        timeline.pending.append(self.pending_count)
        timeline.nodes_on.append(counts)

    # ------------------------------------------------------------------ pods

    def _group_fit(self, pod: SimPod) -> tuple[bool, ...]:
        fits = self._fits_group.get(pod.key)
        if fits is None:
            view = Pod(uid="", name="", requests=_requests(pod.job), node_selector=_selector(pod.job))
            fits = tuple(
                label_mismatch(view, template_labels(g), g.taints) is None
                and shortfall(view.requests, g.shape) is None
                for g in self.groups
            )
            self._fits_group[pod.key] = fits
        return fits

    def _submit(self, pod: SimPod) -> None:
        if not any(self._group_fit(pod)):
            # Visible to the policy as pending (it must say so, not scale), never queued: it must not block.
            self.unplaceable.append(pod)
            self.policy.on_pending(self, pod)
            return
        self._enqueue(pod)

    def _enqueue(self, pod: SimPod) -> None:
        key = "fifo" if self.config.strict_fifo else pod.key
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        self.pending_count += 1
        if self.config.queue_period > 0:
            queue.append(pod)
            self._arm_tick()
        elif queue or not self._place(pod, self.ready):
            queue.append(pod)  # behind pods of the same shape that already found no room
        else:
            self.pending_count -= 1
            return
        self.policy.on_pending(self, pod)

    def _place(self, pod: SimPod, candidates: Iterable[SimNode]) -> bool:
        job = pod.job
        cpu, mem, gpu = job.cpu_m, job.memory_mib, job.gpu
        fits = self._group_fit(pod)
        for node in candidates:
            if (
                node.cpu_free >= cpu
                and node.mem_free >= mem
                and node.gpu_free >= gpu
                and node.pods_free >= 1
                and fits[node.gidx]
            ):
                self._bind(pod, node)
                return True
        return False

    def _bind(self, pod: SimPod, node: SimNode) -> None:
        job = pod.job
        node.cpu_free -= job.cpu_m
        node.mem_free -= job.memory_mib
        node.gpu_free -= job.gpu
        node.pods_free -= 1
        node.running[pod.uid] = pod
        pod.node = node
        pod.run += 1
        pod.view = None
        if pod.started_at is None:
            pod.started_at = self.now
        pod.bound_at = self.now
        end = self.now + job.duration_s
        period = self.config.queue_period
        if period > 0:
            self._push(math.ceil(end / period - 1e-9) * period, _QUEUE_FINISH, (pod, pod.run))
        else:
            self._push(end, _FINISH, (pod, pod.run))

    def _release(self, pod: SimPod) -> SimNode:
        node = pod.node
        assert node is not None
        job = pod.job
        node.cpu_free += job.cpu_m
        node.mem_free += job.memory_mib
        node.gpu_free += job.gpu
        node.pods_free += 1
        del node.running[pod.uid]
        pod.node = None
        pod.view = None
        return node

    def _finish(self, payload: tuple[SimPod, int]) -> None:
        pod, run = payload
        if pod.run != run or pod.node is None:
            return  # that run was evicted
        node = self._release(pod)
        self.completed += 1
        self.last_finish = self.now
        self.policy.on_finished(self, pod)
        if node.phase is Phase.READY:
            self._room_freed(node)

    def _room_freed(self, node: SimNode) -> None:
        """Only ``node`` gained room, so only the head of each queue can newly fit (and only there)."""
        if self.config.queue_period > 0:
            self._arm_tick()
            return
        if self.config.strict_fifo:
            self._full_pass()
            return
        for queue in sorted((q for q in self._queues.values() if q), key=lambda q: q[0].seq):
            while queue and self._place(queue[0], (node,)):
                queue.popleft()
                self.pending_count -= 1
            if node.pods_free <= 0 or node.cpu_free <= 0:
                break

    def _full_pass(self) -> None:
        for queue in sorted((q for q in self._queues.values() if q), key=lambda q: q[0].seq):
            while queue and self._place(queue[0], self.ready):
                queue.popleft()
                self.pending_count -= 1

    def _arm_tick(self) -> None:
        if not self._tick_armed:
            period = self.config.queue_period
            self._tick_armed = True
            # The step is a fixed grid; a tick at this very instant runs after the current event.
            self._push(math.ceil(self.now / period - 1e-9) * period, _QUEUE_TICK, None)

    def pending_pods(self) -> list[SimPod]:
        """Every pod waiting for a node, unplaceable ones included, in submission order."""
        waiting = [pod for queue in self._queues.values() for pod in queue]
        return sorted(waiting + self.unplaceable, key=lambda p: p.seq)

    # ------------------------------------------------------------------ nodes (the power managers)

    def start_on(self, group_name: str, count: int) -> None:
        """Nodes that are already on and Ready when the trace starts (not counted as scale events)."""
        started = self.slots[group_name][:count]
        self.peak_nodes += len(started)
        for node in started:
            self.on_count[group_name] += 1
            node.phase = Phase.READY
            node.on_since = node.booted_at = 0.0
            self._add_ready(node)

    def nodes_of(self, group_name: str) -> list[SimNode]:
        return self.slots[group_name]

    def power_on(
        self, group_name: str, count: int = 0, names: Iterable[str] = (), reason: str = ""
    ) -> list[str]:
        """Power on ``count`` off nodes of the group (lowest slots first) or the named ones. One call."""
        group = self.group_by_name.get(group_name)
        if group is None:
            self.counters.rejected_actions += 1
            return []
        names = tuple(names)
        if names:
            chosen = [self.nodes[n] for n in names if n in self.nodes and not self.nodes[n].is_on]
        else:
            chosen = [n for n in self.slots[group_name] if not n.is_on][:count]
        if len(chosen) < max(count, len(names)):
            self.counters.rejected_actions += 1  # asked beyond the group's max
        if not chosen:
            return []
        if group.kind is GroupKind.CLOUD:
            self.counters.im_calls += 1
        for node in chosen:
            self._boot(node)
        self.scale_events.append(ScaleEvent(self.now, group_name, len(chosen), reason))
        self.last_power_change = self.now
        return [n.name for n in chosen]

    def _boot(self, node: SimNode) -> None:
        config = self.config
        node.epoch += 1
        self.on_count[node.group.name] += 1
        self.peak_nodes = max(self.peak_nodes, sum(self.on_count.values()))
        node.phase = Phase.BOOTING
        node.on_since = self.now
        failed = config.boot_failure_rate > 0 and self.rng.random() < config.boot_failure_rate
        jitter = node.group.boot_seconds * config.boot_jitter
        delay = max(1.0, node.group.boot_seconds + self.rng.uniform(-jitter, jitter))
        self.counters.power_ons += 1
        if failed:
            self.counters.failed_boots += 1
        else:
            self._push(self.now + delay, _NODE_READY, (node, node.epoch))

    def _node_ready(self, payload: tuple[SimNode, int]) -> None:
        node, epoch = payload
        if node.epoch != epoch or node.phase is not Phase.BOOTING:
            return
        node.phase = Phase.READY
        node.booted_at = self.now
        node.view = None
        self._add_ready(node)
        self._room_freed(node)

    def _add_ready(self, node: SimNode) -> None:
        self.ready.append(node)
        self.ready.sort(key=lambda n: n.rank)

    def drain_and_power_off(self, names: Iterable[str], reason: str = "", im_call: bool = True) -> int:
        """Cordon, evict whatever runs there (counted), then power off. Returns the number of evictions."""
        names = tuple(names)
        chosen = [self.nodes[n] for n in names if n in self.nodes and self.nodes[n].is_on]
        if len(chosen) < len(names):
            self.counters.rejected_actions += 1
        evicted = 0
        by_group: dict[str, int] = {}
        for node in chosen:
            if node.phase is Phase.SHUTTING_DOWN:
                continue
            self._shutdown(node)  # cordoned first, so the evicted pods go elsewhere
            evicted += self._evict_all(node)
            by_group[node.group.name] = by_group.get(node.group.name, 0) + 1
        for group_name, count in by_group.items():
            if im_call and self.group_by_name[group_name].kind is GroupKind.CLOUD:
                self.counters.im_calls += 1
            self.scale_events.append(ScaleEvent(self.now, group_name, -count, reason))
        return evicted

    def mark_failed(self, name: str) -> None:
        """Give up on a node that never became Ready: power it off (its cost stops after the shutdown)."""
        node = self.nodes.get(name)
        if node is None or node.phase is not Phase.BOOTING:
            self.counters.rejected_actions += 1
            return
        self._shutdown(node)
        self.scale_events.append(ScaleEvent(self.now, node.group.name, -1, "failed"))

    def _evict_all(self, node: SimNode) -> int:
        pods = list(node.running.values())
        for pod in pods:
            self._release(pod)
            self._enqueue(pod)  # its controller recreates it: it waits again from scratch
        self.counters.evictions += len(pods)
        return len(pods)

    def _shutdown(self, node: SimNode) -> None:
        if node.phase is Phase.READY:
            self.ready.remove(node)
        node.epoch += 1
        node.phase = Phase.SHUTTING_DOWN
        node.view = None
        self.counters.power_offs += 1
        self.last_power_change = self.now
        self._push(self.now + self.config.shutdown_seconds, _NODE_OFF, (node, node.epoch))

    def _node_off(self, payload: tuple[SimNode, int]) -> None:
        node, epoch = payload
        if node.epoch != epoch:
            return
        node.phase = Phase.OFF
        self.on_count[node.group.name] -= 1
        node._reset_capacity()
        self.node_seconds[node.group.name] += self.now - node.on_since
        self.last_power_change = self.now


def _requests(job: TraceJob) -> Resources:
    return Resources(cpu_m=job.cpu_m, memory_mib=job.memory_mib, gpu=job.gpu, pods=1)


def _selector(job: TraceJob) -> dict[str, str]:
    return {ARCH_LABEL: job.arch} if job.arch else {}


def pod_view(pod: SimPod, node_name: str | None) -> Pod:
    """The Kubernetes view of a simulated pod, as the daemon's adapter would build it."""
    job = pod.job
    return Pod(
        uid=pod.uid,
        name=pod.uid,
        requests=_requests(job),
        node_name=node_name,
        phase="Pending" if node_name is None else "Running",
        unschedulable=node_name is None,
        node_selector=_selector(job),
        owner_kind=OwnerKind.JOB if job.kind == "job" else OwnerKind.REPLICA_SET,
        created_at=job.submit_s,
        started_at=None if node_name is None else pod.bound_at,
        labels={WORKLOAD_CLASS_LABEL: job.workload} if job.workload else {},
    )
