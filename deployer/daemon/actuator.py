"""The actuator: carries out one ``Plan`` through the power managers and the Kubernetes API.

Called by the reconciler (``deployer.daemon.reconciler``) after ``plan()``. Every transition is recorded with
the core's ``lifecycle.record_*`` functions and persisted BEFORE the next side effect, so a crash at any point
leaves a state the next round resumes from (a node is never powered on twice; a drain or power-off in flight
is finished). Returns the new immutable ``ElasticityState``; raises nothing for a failed action: errors are
collected in ``ActuationResult.errors`` so one bad group cannot stop the others.

Scale-down order, per node: cordon → evict every evictable pod (eviction API, so PodDisruptionBudgets are
honoured) → wait until they are gone → power off (one call per group) → delete the Node object (cloud VMs).
A pod that must not be evicted, or an eviction refused by a budget, stops that node's drain: it is
uncordoned and left running. Pods still leaving at the drain timeout keep the node DRAINING, and the planner
sends it again next round (as it does for interrupted drains and power-offs after a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from deployer.adapters.kube.client import DrainResult
from deployer.adapters.kube.convert import pod_from_api
from deployer.adapters.power import PowerManager
from deployer.core.elasticity import lifecycle
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    MarkFailed,
    NodeGroup,
    NodePhase,
    Plan,
    Pod,
    ScaleDown,
    ScaleUp,
)
from deployer.core.elasticity.scaledown import eviction_blocker
from deployer.core.elasticity.scheduling import is_finished, is_workload
from deployer.daemon.metrics import DaemonMetrics
from deployer.errors import RemoteNotFound, is_transient

log = logging.getLogger(__name__)


class ClusterOps(Protocol):
    """The Kubernetes writes the actuator makes (``deployer.adapters.kube.KubeCluster`` provides them)."""

    def cordon(self, node: str) -> None: ...

    def uncordon(self, node: str) -> None: ...

    def pods_on_node(self, node: str) -> list[Any]:
        """Raw pods bound to ``node``, fresh from the API server."""
        ...

    def drain(self, node: str, *, timeout: float) -> DrainResult:
        """Cordon, evict through the eviction API (PDBs honoured), wait for the pods to leave."""
        ...

    def delete_node(self, node: str) -> None:
        """Delete the Node object; an already-deleted node is success."""
        ...


class StateSink(Protocol):
    def save(self, state: ElasticityState) -> None: ...


@dataclass
class ActuationResult:
    state: ElasticityState
    errors: list[Exception] = field(default_factory=list)


@dataclass(frozen=True)
class _Drain:
    stopped: str | None = None  # must not go on (protected pod, budget): give the node back
    unfinished: str | None = None  # evicted pods still leaving at the timeout: finish next round


class Actuator:
    def __init__(
        self,
        cluster: ClusterOps,
        groups: Sequence[NodeGroup],
        power: Mapping[str, PowerManager],
        store: StateSink,
        settings: ElasticitySettings,
        *,
        metrics: DaemonMetrics | None = None,
        drain_timeout: float = 120.0,
    ) -> None:
        self._cluster = cluster
        self._groups = {group.name: group for group in groups}
        self._power = dict(power)
        self._store = store
        self._settings = settings
        self._metrics = metrics or DaemonMetrics()
        self._drain_timeout = drain_timeout

    def execute(self, plan: Plan, state: ElasticityState, now: float) -> ActuationResult:
        """Carry out ``plan`` starting from ``state`` (the plan's observed state, persisted first). Persists
        every transition as it goes."""
        result = ActuationResult(state)
        self._save(result)
        for failure in plan.failures:
            self._guard(result, "mark_failed", lambda f=failure: self._fail(result, f, now))
        for down in plan.scale_downs:
            self._guard(result, "scale_down", lambda d=down: self._scale_down(result, d, now))
        for up in plan.scale_ups:
            self._guard(result, "scale_up", lambda u=up: self._scale_up(result, u, now))
        return result

    # ---- actions ------------------------------------------------------------------------------

    def _scale_up(self, result: ActuationResult, up: ScaleUp, now: float) -> None:
        group = self._groups[up.group]
        manager = self._power[up.group]
        if group.kind is GroupKind.CLOUD:
            busy: set[str] = set()
        else:  # the planner chose the boards: everything else counts as taken
            busy = set(group.hosts) - set(up.nodes)
        count = up.count if group.kind is GroupKind.CLOUD else len(up.nodes)
        log.info("scale up %s by %d: %s", up.group, count, up.reason)
        try:
            with self._metrics.timed_call(_backend(group), "power_on"):
                started = manager.power_on(group, count, busy=busy)
        except Exception as err:
            # A transient failure (IM 500, timeout) is retried by the loop's backoff; anything else (quota,
            # a refused template) benches the group so the planner falls back to the next one.
            if not is_transient(err):
                result.state = lifecycle.record_group_error(result.state, up.group, now, self._settings)
                self._save(result)
            raise
        names = [node.name for node in started]
        vm_ids = {node.name: node.vm_id for node in started if node.vm_id is not None}
        result.state = lifecycle.record_powering_on(result.state, up.group, names, now, vm_ids)
        self._save(result)
        self._metrics.inc("deployer_decisions_total", kind="scale_up", group=up.group)
        if group.kind is not GroupKind.CLOUD:
            for name in names:  # a board we powered off was left cordoned
                _ignore_missing(self._cluster.uncordon, name)

    def _scale_down(self, result: ActuationResult, down: ScaleDown, now: float) -> None:
        group = self._groups[down.group]
        log.info("scale down %s: %s (%s)", down.group, ", ".join(down.nodes), down.reason)
        drained: list[str] = []
        for name in down.nodes:
            record = result.state.records.get(name)
            if record is not None and record.phase is NodePhase.POWERING_OFF:
                drained.append(name)  # drained by an earlier run; only the power-off is left
                continue
            result.state = lifecycle.record_draining(result.state, down.group, [name], now)
            self._save(result)
            drain = self._drain_node(name)
            if drain.unfinished:
                log.warning("drain of %s unfinished: %s; it continues next round", name, drain.unfinished)
                continue
            if not drain.stopped:
                drained.append(name)
                continue
            log.warning("drain of %s stopped: %s; uncordoning it and leaving it running", name, drain.stopped)
            _ignore_missing(self._cluster.uncordon, name)
            # Back in service: the idle clock restarts, so the drain is retried only after another idle_time.
            current = result.state.records[name]
            restored = replace(current, phase=NodePhase.USED, since=now, idle_since=None)
            result.state = replace(result.state, records={**result.state.records, name: restored})
            self._save(result)
        if not drained:
            return
        result.state = lifecycle.record_powering_off(result.state, down.group, drained, now)
        self._save(result)
        with self._metrics.timed_call(_backend(group), "power_off"):
            self._power[down.group].power_off(group, drained)
        self._metrics.inc("deployer_decisions_total", len(drained), kind="scale_down", group=down.group)
        if group.kind is GroupKind.CLOUD:
            for name in drained:
                _ignore_missing(self._cluster.delete_node, name)

    def _fail(self, result: ActuationResult, failure: MarkFailed, now: float) -> None:
        record = result.state.records.get(failure.node)
        group_name = failure.group or (record.group if record is not None else None)
        group = self._groups.get(group_name or "")
        log.warning("node %s failed: %s", failure.node, failure.reason)
        if group is not None and group.kind is GroupKind.CLOUD:
            with self._metrics.timed_call(_backend(group), "power_off"):
                self._power[group.name].power_off(group, [failure.node])
            _ignore_missing(self._cluster.delete_node, failure.node)
        result.state = lifecycle.record_failed(result.state, failure, now)
        self._save(result)
        self._metrics.inc("deployer_decisions_total", kind="mark_failed", group=group_name or "")

    # ---- drain --------------------------------------------------------------------------------

    def _drain_node(self, name: str) -> _Drain:
        """Cordon, evict the node's pods and wait until they are gone (bounded by the drain timeout)."""
        self._cluster.cordon(name)  # first, so no pod lands between the check below and the evictions
        for pod in (pod_from_api(raw) for raw in self._cluster.pods_on_node(name)):
            blocker = eviction_blocker(pod) if _must_leave(pod) else None
            if blocker is not None:  # the planner saw an idle node; a protected pod landed since
                return _Drain(stopped=blocker)
        outcome = self._cluster.drain(name, timeout=self._drain_timeout)
        if outcome.complete:
            return _Drain()
        if outcome.blocked:
            return _Drain(stopped=outcome.reason)
        return _Drain(unfinished=outcome.reason)

    # ---- helpers ------------------------------------------------------------------------------

    def _save(self, result: ActuationResult) -> None:
        self._store.save(result.state)

    def _guard(self, result: ActuationResult, kind: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as err:  # one failed action must not stop the others; the loop reports them
            log.warning("%s failed: %s", kind.replace("_", "-"), err)
            result.errors.append(err)


def _must_leave(pod: Pod) -> bool:
    return is_workload(pod) and not is_finished(pod)


def _backend(group: NodeGroup) -> str:
    return "im" if group.kind is GroupKind.CLOUD else "edge"


def _ignore_missing(call: Callable[[str], None], name: str) -> None:
    try:
        call(name)
    except RemoteNotFound:
        log.debug("node %s is not registered; nothing to do", name)
