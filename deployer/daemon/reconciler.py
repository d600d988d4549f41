"""One reconcile round of the elasticity daemon: observe → plan → act, with ``now`` passed in.

Called by the event loop (``deployer.daemon.loop``), by ``deployer daemon run --once``/``--dry-run`` and by
``deployer daemon explain``. A round reads the watched snapshot, loads the persisted state, adopts VMs the
IM holds but we never recorded (a run that crashed between the IM call and the state write, or workers
``deployer create`` started), runs the pure planner, persists the observed state and carries out the plan
(which also re-sends drains and power-offs a previous run left half-done). Decisions are logged with
their reason.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from deployer.adapters.power import PowerManager
from deployer.adapters.state.history import Decision, RoundSample, decisions_of
from deployer.core.elasticity import lifecycle
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    NodeGroup,
    Plan,
    Snapshot,
)
from deployer.core.elasticity.planner import plan as make_plan
from deployer.core.elasticity.scheduling import is_pending
from deployer.daemon.actuator import Actuator, ClusterOps
from deployer.daemon.metrics import DaemonMetrics

log = logging.getLogger(__name__)


class WatchedCluster(ClusterOps, Protocol):
    def snapshot(self) -> Snapshot: ...


class StateStore(Protocol):
    def load(self) -> ElasticityState: ...

    def save(self, state: ElasticityState) -> None: ...


class RoundHistory(Protocol):
    def record_round(self, sample: RoundSample, decisions: list[Decision]) -> None: ...


@dataclass
class Round:
    """What one round saw, decided and did."""

    plan: Plan
    state: ElasticityState
    snapshot: Snapshot
    adopted: tuple[str, ...] = ()
    errors: list[Exception] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        cluster: WatchedCluster,
        groups: Sequence[NodeGroup],
        settings: ElasticitySettings,
        power: Mapping[str, PowerManager],
        store: StateStore,
        *,
        metrics: DaemonMetrics | None = None,
        history: RoundHistory | None = None,
        drain_timeout: float = 120.0,
    ) -> None:
        missing = [group.name for group in groups if group.name not in power]
        if missing:
            raise ValueError(f"no power manager for node group(s) {', '.join(missing)}")
        self._cluster = cluster
        self.groups = tuple(groups)
        self.settings = settings
        self._power = dict(power)
        self._store = store
        self.metrics = metrics or DaemonMetrics()
        self._history = history
        self._actuator = Actuator(
            cluster, groups, power, store, settings, metrics=self.metrics, drain_timeout=drain_timeout
        )

    def run_once(self, now: float, *, dry_run: bool = False) -> Round:
        """One round at wall-clock time ``now``. Raises when the cluster or a power manager cannot be read
        (nothing was done); errors of individual actions are returned in ``Round.errors``."""
        snapshot = self._cluster.snapshot()
        state = self._store.load()
        if not snapshot.synced:
            log.info("the cluster watch has not synced yet: no decision this round")
            return Round(make_plan(snapshot, self.groups, state, self.settings, now), state, snapshot)
        state, adopted = self._adopt(state, snapshot, now)
        plan = make_plan(snapshot, self.groups, state, self.settings, now)
        observed = plan.state if plan.state is not None else state
        self._update_gauges(snapshot, observed)
        if dry_run:
            return Round(plan, observed, snapshot, adopted=adopted)
        self.metrics.inc("deployer_reconciles_total")
        _log_plan(plan)
        done = self._actuator.execute(plan, observed, now)
        self._update_gauges(snapshot, done.state)
        self._record_history(snapshot, done.state, plan, now)
        return Round(plan, done.state, snapshot, adopted=adopted, errors=done.errors)

    def _adopt(
        self, state: ElasticityState, snapshot: Snapshot, now: float
    ) -> tuple[ElasticityState, tuple[str, ...]]:
        """Record as booting every cloud VM the power manager reports that is neither recorded nor
        registered, so the planner counts it instead of starting another one."""
        registered = {node.name for node in snapshot.nodes}
        adopted: list[str] = []
        for group in self.groups:
            if group.kind is not GroupKind.CLOUD:
                continue
            unknown = [
                node
                for node in self._power[group.name].nodes(group)
                if node.name not in state.records and node.name not in registered
            ]
            if not unknown:
                continue
            names = [node.name for node in unknown]
            vm_ids = {node.name: node.vm_id for node in unknown if node.vm_id is not None}
            log.warning("adopting VM(s) of group %s that no record knew of: %s", group.name, ", ".join(names))
            last_up = state.last_scale_up
            state = lifecycle.record_powering_on(state, group.name, names, now, vm_ids)
            # Adoption is not a scale-up decision: keep the cooldown clock where it was.
            state = replace(state, last_scale_up=last_up)
            adopted += names
        return state, tuple(adopted)

    def _update_gauges(self, snapshot: Snapshot, state: ElasticityState) -> None:
        self.metrics.set_gauge("deployer_pending_pods", _pending(snapshot))
        self.metrics.replace_gauge(
            "deployer_nodes",
            {
                (("group", group), ("phase", phase)): count
                for group, phases in _node_counts(state).items()
                for phase, count in phases.items()
            },
        )

    def _record_history(self, snapshot: Snapshot, state: ElasticityState, plan: Plan, now: float) -> None:
        """Keep what the round saw and decided for the dashboard; the round's work stands without it."""
        if self._history is None:
            return
        try:
            self._history.record_round(
                RoundSample(now, _pending(snapshot), _node_counts(state)), decisions_of(plan, now)
            )
        except sqlite3.Error as err:
            log.warning("could not record the round in the elasticity history: %s", err)


def _pending(snapshot: Snapshot) -> int:
    return sum(1 for pod in snapshot.pods if is_pending(pod))


def _node_counts(state: ElasticityState) -> dict[str, dict[str, int]]:
    """Managed nodes by group, then life-cycle phase."""
    counts: dict[str, dict[str, int]] = {}
    for record in state.records.values():
        phases = counts.setdefault(record.group, {})
        phases[record.phase.value] = phases.get(record.phase.value, 0) + 1
    return counts


def _log_plan(plan: Plan) -> None:
    for up in plan.scale_ups:
        log.info(
            "decision: scale up %s by %d (%s)",
            up.group,
            up.count,
            up.reason,
            extra={
                "fields": {"decision": "scale_up", "group": up.group, "count": up.count, "reason": up.reason}
            },
        )
    for down in plan.scale_downs:
        log.info(
            "decision: scale down %s: %s (%s)",
            down.group,
            ", ".join(down.nodes),
            down.reason,
            extra={
                "fields": {
                    "decision": "scale_down",
                    "group": down.group,
                    "nodes": list(down.nodes),
                    "reason": down.reason,
                }
            },
        )
    for failure in plan.failures:
        log.warning(
            "decision: node %s failed (%s)",
            failure.node,
            failure.reason,
            extra={"fields": {"decision": "mark_failed", "node": failure.node, "reason": failure.reason}},
        )
    for item in plan.unplaceable:
        log.info("pod %s can never be placed: %s", item.pod_uid, item.reason)
