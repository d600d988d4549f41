"""The CLUES baseline: a model of what grycap/clues does, for the simulator to compare our policy against.

Modelled on CLUES's published behaviour with its simulator settings (PowOn_Requests, Reconsider_Jobs and
PowOff_IDLE schedulers, "monitor" mode as with its Kubernetes plugin):

* it learns about waiting jobs only by polling the queue (every ``period_monitoring_jobs``) and the nodes
  (every ``period_monitoring_nodes``); its scheduling pipeline runs every ``period_schedule``;
* a job that has waited more than ``reconsider_job_time`` becomes a power-on *request*; requests are served
  in order, each first-fit onto nodes that are on, then booting, then already chosen for power-on, then off
  (booked resources stay allocated while nodes boot, and ``cooldown_served_requests`` after); with
  ``max_booting_nodes`` it stops choosing once that many nodes boot;
* each chosen node is powered on with its own call (one IM call per VM), and only nodes of the first worker
  group are managed;
* a node seen idle for ``idle_time`` is powered off with no drain: a job bound since the last poll is lost;
  a node still not up ``max_wait_poweron`` after its power-on is marked in error and removed.

Each CLUES state change waits for a poll, which is where its latency comes from. Called by
``deployer.sim.run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from itertools import count

from deployer.core.elasticity.model import GroupKind, NodeGroup
from deployer.sim.engine import Phase, SimNode, SimPod, Simulation

_JOBS, _NODES, _SCHEDULE = "clues-jobs", "clues-nodes", "clues-schedule"
_RECOVERY_PERIOD = 30.0  # PERIOD_RECOVERY_NODES: failed power-ons become usable again


@dataclass(frozen=True)
class CluesSettings:
    """CLUES's configuration keys (lower-cased), with the values of the reference calibration setup."""

    idle_time: float = 300.0
    reconsider_job_time: float = 60.0
    cooldown_served_requests: float = 30.0
    max_booting_nodes: int = 0  # 0: no limit
    period_schedule: float = 5.0
    period_monitoring_jobs: float = 10.0
    period_monitoring_nodes: float = 5.0
    delay_powon: float = 10.0
    delay_powoff: float = 10.0
    max_wait_poweron: float = 300.0
    max_wait_poweroff: float = 300.0
    # When the job monitor, the node monitor and the scheduler first run: the phase of the polling clocks,
    # which in a real daemon depends on when each periodic event was registered.
    first_poll: tuple[float, float, float] = (0.0, 0.0, 0.0)


class _NodeState(Enum):
    OFF = "off"
    POW_ON = "powon"
    IDLE = "idle"
    USED = "used"
    POW_OFF = "powoff"
    ON_ERR = "on-err"
    OFF_ERR = "off-err"


_ON = (_NodeState.IDLE, _NodeState.USED)


class _Req(Enum):
    PENDING = "pending"
    ATTENDED = "attended"  # waiting for the nodes it booked to come up
    SERVED = "served"
    BLOCKED = "blocked"  # could run, but an earlier request still waits
    NOT_SERVED = "not-served"


@dataclass(slots=True)
class _NodeView:
    sim: SimNode
    state: _NodeState = _NodeState.OFF
    since: float = 0.0
    powered_on_at: float = 0.0
    cpu_free: int = 0
    mem_free: int = 0


@dataclass(slots=True)
class _Job:
    pod: SimPod
    attended: bool = False
    since: float = 0.0
    attended_at: float = 0.0


@dataclass(slots=True)
class _Request:
    id: int
    pod: SimPod
    state: _Req
    since: float
    booked: list[str] = field(default_factory=list)

    def set(self, state: _Req, now: float) -> None:
        if state is not self.state:
            self.state, self.since = state, now


class CluesPolicy:
    name = "clues"

    def __init__(self, settings: CluesSettings | None = None) -> None:
        self.settings = settings or CluesSettings()
        self.group: NodeGroup | None = None
        self.views: dict[str, _NodeView] = {}  # the managed nodes, in LRMS order
        self.jobs: dict[str, _Job] = {}
        self.requests: list[_Request] = []
        self.requests_of: dict[str, list[_Request]] = {}
        self._ids = count(1)
        self._nodes_seen_at: float | None = None
        self._jobs_seen = False

    def floor(self, group: NodeGroup) -> int:
        return group.min_size

    def start(self, sim: Simulation) -> None:
        for group in sim.groups:
            sim.start_on(group.name, group.min_size)
        cloud = [g for g in sim.groups if g.kind is GroupKind.CLOUD]
        self.group = cloud[0] if cloud else sim.groups[0]  # CLUES manages the first worker group only
        for node in sim.nodes_of(self.group.name):
            self.views[node.name] = _NodeView(node)
        for tag, delay in zip((_JOBS, _NODES, _SCHEDULE), self.settings.first_poll, strict=True):
            sim.set_timer(delay, tag)

    def on_finished(self, sim: Simulation, pod: SimPod) -> None:
        return None  # CLUES learns nothing from finished jobs

    def on_pending(self, sim: Simulation, pod: SimPod) -> None:
        return None  # CLUES in monitor mode is never told: it polls

    def on_timer(self, sim: Simulation, tag: str) -> None:
        s = self.settings
        if tag == _JOBS:
            self._monitor_jobs(sim.now, sim.pending_pods())
            sim.set_timer(s.period_monitoring_jobs, tag)
        elif tag == _NODES:
            self._monitor_nodes(sim)
            sim.set_timer(s.period_monitoring_nodes, tag)
        else:
            if self._jobs_seen and self._nodes_seen_at is not None:
                self._schedule(sim)
            sim.set_timer(s.period_schedule, tag)

    # ------------------------------------------------------------------ monitoring

    def _monitor_jobs(self, now: float, pending: list[SimPod]) -> None:
        waiting = {}
        for pod in pending:
            job = self.jobs.get(pod.uid)
            if job is None:
                job = _Job(pod, since=now)
            elif job.attended:  # the queue still says "pending": back to pending, clock restarts
                job.attended, job.since = False, now
            waiting[pod.uid] = job
        self.jobs = waiting
        self._jobs_seen = True

    def _monitor_nodes(self, sim: Simulation) -> None:
        s, now = self.settings, sim.now
        for view in self.views.values():
            node = view.sim
            if node.phase is Phase.READY:
                reported = _NodeState.USED if node.running else _NodeState.IDLE
                view.cpu_free, view.mem_free = node.cpu_free, node.mem_free
            else:
                reported = _NodeState.OFF
                view.cpu_free, view.mem_free = node.group.shape.cpu_m, node.group.shape.memory_mib
            current = view.state
            if reported is current:
                continue
            if current is _NodeState.POW_ON:
                if reported is _NodeState.OFF:
                    if now - view.since >= s.max_wait_poweron:
                        self._set(view, _NodeState.OFF_ERR, now)
                        if node.phase is Phase.BOOTING:
                            sim.mark_failed(node.name)  # the power manager removes the VM that never came up
                    continue
                if now - view.since < s.delay_powon:
                    continue
            elif current is _NodeState.POW_OFF:
                if reported is not _NodeState.OFF:
                    if now - view.since >= s.max_wait_poweroff:
                        self._set(view, _NodeState.ON_ERR, now)
                    continue
                if now - view.since < s.delay_powoff:
                    continue
            elif current is _NodeState.OFF_ERR and reported is _NodeState.OFF:
                if now - view.since >= _RECOVERY_PERIOD:
                    self._set(view, _NodeState.OFF, now)
                continue
            elif current is _NodeState.ON_ERR and reported is not _NodeState.OFF:
                continue
            self._set(view, reported, now)
        self._nodes_seen_at = now

    @staticmethod
    def _set(view: _NodeView, state: _NodeState, now: float) -> None:
        if state in _ON and view.state not in _ON:
            view.powered_on_at = now
        view.state, view.since = state, now

    # ------------------------------------------------------------------ the scheduling pipeline

    def _schedule(self, sim: Simulation) -> None:
        now = sim.now
        sim.counters.decisions += 1
        self._purge_requests(now)
        to_power_on = self._power_on_requests(now)
        self._reconsider_jobs(now)
        to_power_off = [
            v
            for v in self.views.values()
            if v.state is _NodeState.IDLE and v.since < now - self.settings.idle_time
        ]
        for view in to_power_off:
            self._set(view, _NodeState.POW_OFF, now)
            sim.drain_and_power_off((view.sim.name,), "clues: idle")  # no drain: running pods are lost
        for view in to_power_on:
            if view.state in (*_ON, _NodeState.POW_ON, _NodeState.ON_ERR):
                continue
            if view.sim.is_on:  # still shutting down: the power manager refuses
                self._set(view, _NodeState.OFF_ERR, now)
                continue
            sim.power_on(view.sim.group.name, names=(view.sim.name,), reason="clues: request")
            self._set(view, _NodeState.POW_ON, now)

    def _purge_requests(self, now: float) -> None:
        final = (_Req.SERVED, _Req.NOT_SERVED)
        keep = []
        for req in self.requests:
            if req.state in final and now - req.since > self.settings.cooldown_served_requests:
                self.requests_of[req.pod.uid].remove(req)
            else:
                keep.append(req)
        self.requests = keep

    def _fits(self, pod: SimPod, view: _NodeView, free: dict[str, list[int]]) -> bool:
        job = pod.job
        room = free[view.sim.name]
        if job.arch is not None and job.arch != view.sim.group.arch:
            return False
        return room[0] >= job.cpu_m and room[1] >= job.memory_mib and job.gpu <= view.sim.group.shape.gpu

    def _book(self, free: dict[str, list[int]], req: _Request) -> None:
        for name in req.booked:
            free[name][0] -= req.pod.job.cpu_m
            free[name][1] -= req.pod.job.memory_mib

    def _power_on_requests(self, now: float) -> list[_NodeView]:
        """PowOn_Requests: serve the requests in order; return the nodes to power on."""
        s = self.settings
        views = self.views
        free = {name: [v.cpu_free, v.mem_free] for name, v in views.items()}
        nodes_seen_at = self._nodes_seen_at or 0.0
        for req in self.requests:  # bookings made in earlier rounds
            if not req.booked:
                continue
            if req.state is _Req.ATTENDED:
                waiting = any(
                    views[n].state in (_NodeState.POW_OFF, _NodeState.POW_ON, _NodeState.ON_ERR)
                    for n in req.booked
                )
                if waiting or req.since > nodes_seen_at:
                    self._book(free, req)
                else:
                    req.booked = []
                    req.set(_Req.PENDING, now)
            elif req.state is _Req.SERVED:
                if nodes_seen_at - req.since < s.cooldown_served_requests:
                    self._book(free, req)
                else:
                    req.booked = []

        by_state: dict[_NodeState, list[_NodeView]] = {state: [] for state in _NodeState}
        for view in views.values():
            by_state[view.state].append(view)
        powering_on = len(by_state[_NodeState.POW_ON])
        chosen: dict[str, _NodeView] = {}
        alive = 0
        for req in self.requests:
            if req.state in (_Req.PENDING, _Req.BLOCKED):
                pod = req.pod
                on = by_state[_NodeState.IDLE] + by_state[_NodeState.USED] + by_state[_NodeState.ON_ERR]
                hit = next((v for v in on if self._fits(pod, v, free)), None)
                if hit is not None:
                    req.set(_Req.BLOCKED if alive else _Req.SERVED, now)
                else:
                    off = by_state[_NodeState.OFF]
                    pools = (
                        by_state[_NodeState.POW_ON],
                        [v for v in off if v.sim.name in chosen],
                        [v for v in off if v.sim.name not in chosen],
                        by_state[_NodeState.POW_OFF],
                    )
                    pool_size = len(on)
                    for step, pool in enumerate(pools):
                        if (
                            step == 1
                            and s.max_booting_nodes
                            and powering_on + len(chosen) >= s.max_booting_nodes
                        ):
                            return list(chosen.values())
                        pool_size += len(pool)
                        hit = next((v for v in pool if self._fits(pod, v, free)), None)
                        if hit is not None:
                            req.set(_Req.ATTENDED, now)
                            break
                    if hit is None:
                        if alive:
                            break  # later requests wait behind this one
                        req.set(_Req.NOT_SERVED if pool_size == 0 else _Req.BLOCKED, now)
                req.booked = []
                if hit is not None:
                    free[hit.sim.name][0] -= pod.job.cpu_m
                    free[hit.sim.name][1] -= pod.job.memory_mib
                    req.booked = [hit.sim.name]
                    if hit.state in (_NodeState.OFF, _NodeState.POW_OFF):
                        chosen[hit.sim.name] = hit
            if req.state in (_Req.PENDING, _Req.ATTENDED):
                alive += 1
        return list(chosen.values())

    def _reconsider_jobs(self, now: float) -> None:
        """Reconsider_Jobs: a job waiting too long with no live request gets a new request."""
        limit = self.settings.reconsider_job_time
        for uid, job in self.jobs.items():
            if job.attended or now - max(job.since, job.attended_at) <= limit:
                continue
            live = False
            for req in self.requests_of.get(uid, ()):
                if req.state is _Req.SERVED:
                    live = live or now - req.since < limit
                elif req.state is not _Req.NOT_SERVED:
                    live = True
            if live:
                continue
            job.attended, job.since, job.attended_at = True, now, now
            req = _Request(next(self._ids), job.pod, _Req.PENDING, now)
            self.requests.append(req)
            self.requests_of.setdefault(uid, []).append(req)
