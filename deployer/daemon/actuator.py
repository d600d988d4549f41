"""The actuator: carries out one ``Plan`` through the power managers and the Kubernetes API.

Called by the reconciler (``deployer.daemon.reconciler``) after ``plan()``. Every transition is recorded with
the core's ``lifecycle.record_*`` functions and persisted BEFORE the next side effect, so a crash at any point
leaves a state the next round resumes from (a node is never powered on twice; a drain or power-off in flight
is finished). Returns the new immutable ``ElasticityState``; raises nothing for a failed action: errors are
collected in ``ActuationResult.errors`` so one bad group cannot stop the others.

Order: scale-ups first (pods never wait behind drains), then removals. A removal whose Node exists is
drained first, whatever the reason (idle, failed boot): cordon and mark it ``deployer.io/scale-down=
draining`` in one patch → evict every evictable pod (eviction API, so PodDisruptionBudgets are honoured) →
wait until they are gone. Drains run concurrently (bounded), each within the drain timeout. Then, per group:
mark ``powering-off`` → one power-off call → delete the Node objects of the VMs confirmed gone. A pod that
must not be evicted, or an eviction refused by a budget, stops that node's drain: it is uncordoned and left
running. Pods still leaving at the drain timeout keep the node DRAINING, and the planner sends it again
next round (as it does for interrupted drains and power-offs after a restart). The marks live on the Node,
so a replica that takes over after a crash resumes the removal (``deployer.daemon.reconciler``). With a
``leader`` check, leadership is confirmed right before every side effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from deployer.adapters.kube.client import DRAINING, POWERING_OFF, DrainResult
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
    ScaleUp,
)
from deployer.core.elasticity.scaledown import eviction_blocker
from deployer.core.elasticity.scheduling import is_finished, is_workload
from deployer.daemon.metrics import DaemonMetrics
from deployer.errors import RemoteNotFound, TransientError, is_transient

log = logging.getLogger(__name__)


class ClusterOps(Protocol):
    """The Kubernetes writes the actuator makes (``deployer.adapters.kube.KubeCluster`` provides them)."""

    def cordon(self, node: str, *, scale_down: str | None = None) -> None: ...

    def uncordon(self, node: str) -> None: ...

    def mark_scale_down(self, node: str, phase: str) -> None: ...

    def pods_on_node(self, node: str) -> list[Any]:
        """Raw pods bound to ``node``, fresh from the API server."""
        ...

    def drain(
        self, node: str, *, timeout: float, before_write: Callable[[], None] | None = None
    ) -> DrainResult:
        """Cordon, evict through the eviction API (PDBs honoured), wait for the pods to leave."""
        ...

    def delete_node(self, node: str) -> None:
        """Delete the Node object; an already-deleted node is success."""
        ...


class StateSink(Protocol):
    def save(self, state: ElasticityState) -> None: ...


class LeadershipLost(TransientError):
    """Another replica leads now: this one must not touch the cluster or the IM any more."""


@dataclass
class ActuationResult:
    state: ElasticityState
    errors: list[Exception] = field(default_factory=list)


@dataclass(frozen=True)
class _Drain:
    stopped: str | None = None  # must not go on (protected pod, budget): give the node back
    unfinished: str | None = None  # evicted pods still leaving at the timeout: finish next round


@dataclass(frozen=True)
class _Removal:
    """One node to take away: drained first when its Node exists, then powered off."""

    node: str
    group: str
    failure: MarkFailed | None = None  # set for a failed boot (recorded FAILED once its VM is gone)
    drained: bool = False  # an earlier run drained it; only the power-off is left


class Actuator:
    """Carries out plans. ``leader`` (when given) is asked right before every side effect: a replica that
    lost its Lease stops at once instead of finishing a round another replica now owns. At most
    ``max_drains`` nodes drain at a time, each bounded by ``drain_timeout``."""

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
        max_drains: int = 4,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self._cluster = cluster
        self._groups = {group.name: group for group in groups}
        self._power = dict(power)
        self._store = store
        self._settings = settings
        self._metrics = metrics or DaemonMetrics()
        self._drain_timeout = drain_timeout
        self._max_drains = max(1, max_drains)
        self.leader = leader

    def execute(
        self,
        plan: Plan,
        state: ElasticityState,
        now: float,
        *,
        registered: Collection[str] | None = None,
        vm_names: Mapping[str, str] | None = None,
    ) -> ActuationResult:
        """Carry out ``plan`` starting from ``state`` (the plan's observed state, persisted first). Persists
        every transition as it goes.

        Scale-ups go first (pods should not wait behind drains), then every removal: drains run
        concurrently, then one power-off per group, then the Node objects of VMs confirmed gone.
        ``registered`` names the Nodes that exist (None: assume every node does); ``vm_names`` maps a
        Node name to the name its power manager knows the machine by, when the two differ."""
        result = ActuationResult(state)
        self._save(result)
        for up in plan.scale_ups:
            self._guard(result, "scale_up", lambda u=up: self._scale_up(result, u, now))
        removals = []
        for failure in plan.failures:
            group = self._groups.get(failure.group or self._group_of(result.state, failure.node))
            log.warning("node %s failed: %s", failure.node, failure.reason)
            if group is not None and group.kind is GroupKind.CLOUD:
                removals.append(_Removal(failure.node, group.name, failure))
            else:  # a board that did not come up rests; there is nothing to remove
                result.state = lifecycle.record_failed(result.state, failure, now)
                self._save(result)
                self._metrics.inc("deployer_decisions_total", kind="mark_failed", group=failure.group or "")
        for down in plan.scale_downs:
            log.info("scale down %s: %s (%s)", down.group, ", ".join(down.nodes), down.reason)
            for name in down.nodes:
                record = result.state.records.get(name)
                drained = record is not None and record.phase is NodePhase.POWERING_OFF
                removals.append(_Removal(name, down.group, drained=drained))
        if removals:
            self._guard(
                result, "scale_down", lambda: self._remove(result, removals, now, registered, vm_names or {})
            )
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
        self._check_leader()
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
                self._check_leader()
                _ignore_missing(self._cluster.uncordon, name)

    def _remove(
        self,
        result: ActuationResult,
        removals: Sequence[_Removal],
        now: float,
        registered: Collection[str] | None,
        vm_names: Mapping[str, str],
    ) -> None:
        """Drain (concurrently) every removal whose Node exists, then power off what drained, per group."""
        to_drain = [r for r in removals if not r.drained and (registered is None or r.node in registered)]
        for removal in to_drain:
            if removal.failure is None:
                result.state = lifecycle.record_draining(result.state, removal.group, [removal.node], now)
        self._save(result)
        outcomes: dict[str, _Drain | Exception] = {}
        if to_drain:
            workers = min(self._max_drains, len(to_drain))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drain") as pool:
                futures = {
                    r.node: pool.submit(self._drain_node, r.node, dead=r.failure is not None)
                    for r in to_drain
                }
            for name, future in futures.items():
                error = future.exception()
                outcomes[name] = error if isinstance(error, Exception) else future.result()
        ready: dict[str, list[_Removal]] = {}
        for removal in removals:
            outcome = outcomes.get(removal.node)
            if isinstance(outcome, Exception):
                log.warning("drain of %s failed: %s", removal.node, outcome)
                result.errors.append(outcome)
                continue
            if outcome is not None and outcome.unfinished:
                log.warning(
                    "drain of %s unfinished: %s; it continues next round", removal.node, outcome.unfinished
                )
                continue
            if outcome is not None and outcome.stopped:
                self._give_back(result, removal, outcome.stopped, now)
                continue
            ready.setdefault(removal.group, []).append(removal)
        for group_name, group_removals in sorted(ready.items()):
            self._guard(
                result,
                "power_off",
                lambda g=group_name, r=group_removals: self._power_off(result, g, r, now, vm_names),
            )

    def _give_back(self, result: ActuationResult, removal: _Removal, why: str, now: float) -> None:
        log.warning("drain of %s stopped: %s; uncordoning it and leaving it running", removal.node, why)
        self._check_leader()
        _ignore_missing(self._cluster.uncordon, removal.node)
        if removal.failure is not None:
            return  # still a failed boot: tried again next round, when its pods may have gone
        # Back in service: the idle clock restarts, so the drain is retried only after another idle_time.
        current = result.state.records[removal.node]
        restored = replace(current, phase=NodePhase.USED, since=now, idle_since=None)
        result.state = replace(result.state, records={**result.state.records, removal.node: restored})
        self._save(result)

    def _power_off(
        self,
        result: ActuationResult,
        group_name: str,
        removals: Sequence[_Removal],
        now: float,
        vm_names: Mapping[str, str],
    ) -> None:
        group = self._groups[group_name]
        manager = self._power[group_name]
        names = [r.node for r in removals]
        leaving = [r.node for r in removals if r.failure is None]
        if leaving:
            result.state = lifecycle.record_powering_off(result.state, group_name, leaving, now)
            self._save(result)
        for name in names:  # what a new leader needs to finish the job
            self._check_leader()
            _ignore_missing(lambda n: self._cluster.mark_scale_down(n, POWERING_OFF), name)
        machines = {name: vm_names.get(name, name) for name in names}
        self._check_leader()
        with self._metrics.timed_call(_backend(group), "power_off"):
            manager.power_off(group, sorted(set(machines.values())))
        if leaving:
            self._metrics.inc("deployer_decisions_total", len(leaving), kind="scale_down", group=group_name)
        gone = set(names)
        if group.kind is GroupKind.CLOUD:
            # The Node object goes only once its VM is confirmed gone: a Node deleted while its VM still
            # runs would hide a live, billed machine from every later round.
            alive = {vm.name for vm in manager.nodes(group)}
            gone = {name for name in names if machines[name] not in alive}
            for name in sorted(set(names) - gone):
                log.warning("VM of node %s still exists after its removal; retrying later", name)
            for name in sorted(gone):
                self._check_leader()
                _ignore_missing(self._cluster.delete_node, name)
        for removal in removals:
            if removal.failure is not None and removal.node in gone:
                result.state = lifecycle.record_failed(result.state, removal.failure, now)
                self._save(result)
                self._metrics.inc("deployer_decisions_total", kind="mark_failed", group=group_name)

    # ---- drain --------------------------------------------------------------------------------

    def _drain_node(self, name: str, *, dead: bool = False) -> _Drain:
        """Cordon, evict the node's pods and wait until they are gone (bounded by the drain timeout).

        ``dead``: the node never became Ready. Its evicted pods cannot finish terminating (no kubelet runs
        them), so once every eviction is accepted (budgets respected) the drain counts as done."""
        self._check_leader()
        # First, and marked in the cluster, so no pod lands between the check below and the evictions,
        # and a replica taking over after a crash knows this node is being drained.
        self._cluster.cordon(name, scale_down=DRAINING)
        for pod in (pod_from_api(raw) for raw in self._cluster.pods_on_node(name)):
            blocker = eviction_blocker(pod) if _must_leave(pod) else None
            if blocker is not None:  # the planner saw an idle node; a protected pod landed since
                return _Drain(stopped=blocker)
        outcome = self._cluster.drain(name, timeout=self._drain_timeout, before_write=self._check_leader)
        if outcome.blocked:
            return _Drain(stopped=outcome.reason)
        if outcome.complete or dead:
            return _Drain()
        return _Drain(unfinished=outcome.reason)

    # ---- helpers ------------------------------------------------------------------------------

    def _check_leader(self) -> None:
        if self.leader is not None and not self.leader():
            raise LeadershipLost("this replica is no longer the leader: stopping before the next change")

    def _group_of(self, state: ElasticityState, node: str) -> str:
        record = state.records.get(node)
        return record.group if record is not None else ""

    def _save(self, result: ActuationResult) -> None:
        self._store.save(result.state)  # only ever from the calling thread: drain workers return values

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
