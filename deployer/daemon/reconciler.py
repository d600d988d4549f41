"""One reconcile round of the elasticity daemon: observe → plan → act, with ``now`` passed in.

Called by the event loop (``deployer.daemon.loop``), by ``deployer daemon run --once``/``--dry-run`` and by
``deployer daemon explain``. A round reads the watched snapshot and the persisted state, then, before
planning:

* matches every cloud VM to its Node (``deployer.daemon.identity``: vm-id label, providerID, name, unique
  address), so a kubelet registered under an unexpected name is a booted node, not a failed boot;
* resumes the removals that Nodes are marked with (``deployer.io/scale-down``) but our records do not know
  (a replica that took over, a lost database);
* adopts VMs the IM holds that nothing matches and no record knows (a run that crashed between the IM call
  and the state write, or workers ``deployer create`` started);
* learns each group's node template from its Ready nodes (``deployer.core.elasticity.templates``);
* keeps only real demand: unbound pods the scheduler marked Unschedulable.

Then it runs the pure planner, persists the observed state and carries out the plan (which also re-sends
drains and power-offs left half-done). Decisions are logged with their reason.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from deployer.adapters.kube.client import DRAINING, POWERING_OFF, SCALE_DOWN_ANNOTATION
from deployer.adapters.power import PoweredOn, PowerManager
from deployer.adapters.state.history import Decision, RoundSample, decisions_of
from deployer.core.elasticity import lifecycle
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    NodeGroup,
    NodePhase,
    NodeRecord,
    Plan,
    Pod,
    Resources,
    Snapshot,
)
from deployer.core.elasticity.planner import plan as make_plan
from deployer.core.elasticity.runtimes import RuntimeModel, learn_finished
from deployer.core.elasticity.scheduling import is_pending
from deployer.core.elasticity.templates import observed_shapes, with_shapes
from deployer.daemon.actuator import Actuator, ClusterOps
from deployer.daemon.identity import match_vms, node_identity
from deployer.daemon.metrics import DaemonMetrics

log = logging.getLogger(__name__)


class WatchedCluster(ClusterOps, Protocol):
    def snapshot(self) -> Snapshot: ...

    def finished_pods(self) -> list[Pod]:
        """Succeeded and Failed pods still listed: the run times the planner learns from."""
        ...

    def node_objects(self) -> list[Any]:
        """The raw Node objects of the watch cache (their providerID, labels and addresses)."""
        ...


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


@dataclass(frozen=True)
class _Machines:
    """This round's VMs against the Nodes: which Node each VM registered as."""

    vms: Mapping[str, Sequence[PoweredOn]]  # cloud group -> its VMs
    node_of: Mapping[str, str]  # VM name -> Node name, for the VMs that have a Node

    def vm_names(self) -> dict[str, str]:
        """Node name -> VM name, where the kubelet registered under another name than the VM's."""
        return {node: vm for vm, node in self.node_of.items() if node != vm}


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
        max_drains: int = 4,
        leader: Callable[[], bool] | None = None,
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
        # Learnt node templates; a group whose nodes are all gone keeps its last one (no boot loop).
        self.templates: dict[str, Resources] = {}
        # Learnt run times per workload class (``deployer.core.elasticity.runtimes``), in memory: after a
        # restart the planner behaves as for unknown classes until pods finish again.
        self.runtimes = RuntimeModel()
        self._learned: frozenset[str] = frozenset()
        self._first_round = True
        self._actuator = Actuator(
            cluster,
            groups,
            power,
            store,
            settings,
            metrics=self.metrics,
            drain_timeout=drain_timeout,
            max_drains=max_drains,
            leader=leader,
        )

    def follow_leadership(self, leader: Callable[[], bool]) -> None:
        """Act only while ``leader()`` is true, checked right before every side effect."""
        self._actuator.leader = leader

    def run_once(self, now: float, *, dry_run: bool = False) -> Round:
        """One round at wall-clock time ``now``. Raises when the cluster or a power manager cannot be read
        (nothing was done); errors of individual actions are returned in ``Round.errors``."""
        snapshot = self._cluster.snapshot()
        state = self._store.load()
        if not snapshot.synced:
            log.info("the cluster watch has not synced yet: no decision this round")
            return Round(make_plan(snapshot, self.groups, state, self.settings, now), state, snapshot)
        machines = self._machines()
        state = self._identify(state, machines)
        state = self._resume_marked(state, snapshot, machines, now)
        self._first_round = False
        state, adopted = self._adopt(state, machines, now)
        members = {record.name: record.group for record in state.records.values()}
        self.templates.update(observed_shapes(snapshot, self.groups, members))
        groups = with_shapes(self.groups, self.templates)
        self.runtimes, self._learned = learn_finished(
            self.runtimes, self._cluster.finished_pods(), self._learned
        )
        plan = make_plan(demand_only(snapshot), groups, state, self.settings, now, self.runtimes)
        plan = _explain_non_demand(plan, snapshot)
        observed = plan.state if plan.state is not None else state
        self._update_gauges(snapshot, observed)
        if dry_run:
            return Round(plan, observed, snapshot, adopted=adopted)
        self.metrics.inc("deployer_reconciles_total")
        _log_plan(plan)
        registered = {node.name for node in snapshot.nodes}
        done = self._actuator.execute(
            plan, observed, now, registered=registered, vm_names=machines.vm_names()
        )
        self._update_gauges(snapshot, done.state)
        self._record_history(snapshot, done.state, plan, now)
        return Round(plan, done.state, snapshot, adopted=adopted, errors=done.errors)

    def _machines(self) -> _Machines:
        vms = {
            group.name: tuple(self._power[group.name].nodes(group))
            for group in self.groups
            if group.kind is GroupKind.CLOUD
        }
        identities = [node_identity(node) for node in self._cluster.node_objects()]
        every = [vm for group_vms in vms.values() for vm in group_vms]
        return _Machines(vms, match_vms(every, identities))

    def _identify(self, state: ElasticityState, machines: _Machines) -> ElasticityState:
        """Key the record of every VM whose kubelet registered under another name by its Node's name, so
        the planner sees one node, booted, instead of a boot that never ends and a stranger."""
        records = dict(state.records)
        for group_vms in machines.vms.values():
            for vm in group_vms:
                node = machines.node_of.get(vm.name)
                if node is None or node == vm.name or vm.name not in records:
                    continue
                booted = records.pop(vm.name)
                known = records.get(node)
                records[node] = replace(known or booted, name=node, vm_id=vm.vm_id)
                log.info("VM %s (IM id %s) registered as node %s", vm.name, vm.vm_id, node)
        return replace(state, records=records)

    def _resume_marked(
        self, state: ElasticityState, snapshot: Snapshot, machines: _Machines, now: float
    ) -> ElasticityState:
        """Resume the removals that the Nodes say are under way but our records do not (another replica, or
        a lost database, started them), and, at start-up, the power-offs a previous run sent: the drain is
        sent again (it is idempotent), then the power-off."""
        vm_group = {
            machines.node_of[vm.name]: group
            for group, group_vms in machines.vms.items()
            for vm in group_vms
            if vm.name in machines.node_of
        }
        kinds = {group.name: group.kind for group in self.groups}
        records = dict(state.records)
        present = {node.name for node in snapshot.nodes}
        with_vm = set(machines.node_of.values())
        for name, record in state.records.items():
            # A power-off sent before a restart may never have reached the IM, and one whose VM is gone
            # only waits for its Node to be deleted: neither waits for ``power_off_timeout``.
            cloud = kinds.get(record.group) is GroupKind.CLOUD
            sent = record.phase is NodePhase.POWERING_OFF and cloud and name in present
            if sent and (self._first_round or name not in with_vm):
                records[name] = replace(record, phase=NodePhase.DRAINING, since=now)
        for node in snapshot.nodes:
            if node.annotations.get(SCALE_DOWN_ANNOTATION) not in (DRAINING, POWERING_OFF):
                continue
            record = records.get(node.name)
            if record is not None and record.phase in _REMOVING:
                continue
            group = (record.group if record is not None else None) or node.group or vm_group.get(node.name)
            if group not in kinds or (kinds[group] is not GroupKind.CLOUD and not node.ready):
                continue  # a dark board that was powered off: the planner sees it as off
            log.warning("node %s is marked as being removed; resuming its removal", node.name)
            vm_id = record.vm_id if record is not None else None
            records[node.name] = NodeRecord(node.name, group, NodePhase.DRAINING, now, vm_id=vm_id)
        return replace(state, records=records)

    def _adopt(
        self, state: ElasticityState, machines: _Machines, now: float
    ) -> tuple[ElasticityState, tuple[str, ...]]:
        """Record as booting every cloud VM the power manager reports that is neither recorded nor has a
        Node, so the planner counts it instead of starting another one."""
        adopted: list[str] = []
        for group_name, group_vms in sorted(machines.vms.items()):
            unknown = [
                vm for vm in group_vms if vm.name not in state.records and vm.name not in machines.node_of
            ]
            if not unknown:
                continue
            names = [vm.name for vm in unknown]
            vm_ids = {vm.name: vm.vm_id for vm in unknown if vm.vm_id is not None}
            log.warning("adopting VM(s) of group %s that no record knew of: %s", group_name, ", ".join(names))
            last_up = state.last_scale_up
            state = lifecycle.record_powering_on(state, group_name, names, now, vm_ids)
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


_REMOVING = (NodePhase.DRAINING, NodePhase.POWERING_OFF, NodePhase.OFF, NodePhase.FAILED)
NOT_DEMAND = "not demand yet: the scheduler has not found it unschedulable (scheduling gates, claims binding)"


def demand_only(snapshot: Snapshot) -> Snapshot:
    """The snapshot without the unbound pods that the scheduler has not marked Unschedulable: a gated pod,
    one waiting for its volumes, or one the scheduler has not tried yet is no reason to boot a node."""
    pods = tuple(pod for pod in snapshot.pods if not is_pending(pod) or pod.unschedulable)
    return snapshot if len(pods) == len(snapshot.pods) else replace(snapshot, pods=pods)


def _explain_non_demand(plan: Plan, snapshot: Snapshot) -> Plan:
    waiting = {pod.uid: NOT_DEMAND for pod in snapshot.pods if is_pending(pod) and not pod.unschedulable}
    return replace(plan, explanations={**waiting, **plan.explanations}) if waiting else plan


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
