"""The per-node life cycle: off → powering_on → idle/used → draining → powering_off → off/gone, or failed.

Two halves, both pure:

* ``observe()`` (called by ``plan()``) reads the snapshot against the remembered records and advances what
  can be seen: a booting node became Ready (→ idle/used), a used node emptied (idle stamp), a cloud VM
  vanished (record dropped), an edge board went dark after power-off (→ off), a boot took longer than
  ``provision_timeout`` (→ a ``MarkFailed`` action). It also sorts each group's nodes by what they offer
  the planner: active capacity, booting capacity, leaving, off (wakeable), unavailable.
* ``record_*()`` (called by the actuator of the daemon or the simulator after each side effect) write the
  transitions that only the actuator knows about: powering on, draining, powering off, failed, backoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from deployer.core.elasticity.index import ClusterIndex
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    MarkFailed,
    Node,
    NodeGroup,
    NodePhase,
    NodeRecord,
)

_MAX_BACKOFF_DOUBLINGS = 4  # the backoff after repeated failures tops out at 16 x failure_backoff


DEMAND_MEMORY = 8  # scale-up rounds remembered per group


def backoff_seconds(state: ElasticityState, group: str, settings: ElasticitySettings) -> float:
    """How long a group rests after its latest failed boot: doubling with each failure in a row."""
    failures = state.group_failures.get(group, 1)
    return settings.failure_backoff * 2 ** min(max(failures - 1, 0), _MAX_BACKOFF_DOUBLINGS)


@dataclass(slots=True)
class GroupView:
    """What one group's nodes offer this round. Lists are sorted (by name; wakeable boards by host order)."""

    group: NodeGroup
    active: list[Node] = field(default_factory=list)  # Ready, schedulable, ours to use and to remove
    booting: list[str] = field(default_factory=list)  # powering on within the timeout
    leaving: list[str] = field(default_factory=list)  # draining or powering off
    unavailable: list[str] = field(default_factory=list)  # present but unusable (NotReady, cordoned)
    wakeable: list[str] = field(default_factory=list)  # edge boards that are off and may be powered on
    blocked: dict[str, str] = field(default_factory=dict)  # edge boards that may not be powered on: why
    resume: dict[str, str] = field(default_factory=dict)  # leaving nodes whose removal must be re-sent: why
    backoff_until: float = 0.0

    @property
    def size(self) -> int:
        """Nodes that exist or are on their way: what counts against ``max_size``."""
        return len(self.active) + len(self.booting) + len(self.leaving) + len(self.unavailable)

    @property
    def staying(self) -> int:
        """Nodes that will still be there when in-flight operations finish: what ``min_size`` protects."""
        return len(self.active) + len(self.booting) + len(self.unavailable)

    @property
    def max_size(self) -> int:
        if self.group.kind is not GroupKind.CLOUD and self.group.hosts:
            return min(self.group.max_size, len(self.group.hosts))
        return self.group.max_size


@dataclass(frozen=True, slots=True)
class Observation:
    state: ElasticityState
    groups: Mapping[str, GroupView]
    failures: tuple[MarkFailed, ...]


def observe(
    index: ClusterIndex,
    groups: Sequence[NodeGroup],
    state: ElasticityState,
    settings: ElasticitySettings,
    now: float,
) -> Observation:
    records = dict(state.records)
    group_failures = dict(state.group_failures)
    failures: list[MarkFailed] = []
    views: dict[str, GroupView] = {}
    members: dict[str, list[str]] = {g.name: list(g.hosts) for g in groups}
    for node in index.nodes.values():
        if node.group in members:
            members[node.group].append(node.name)
    for record in state.records.values():
        if record.group in members:
            members[record.group].append(record.name)
    for group in groups:
        view = views[group.name] = GroupView(group)
        view.backoff_until = state.group_backoff_until.get(group.name, 0.0)
        backoff = backoff_seconds(state, group.name, settings)
        host_order = {host: i for i, host in enumerate(group.hosts)}
        names = sorted(set(members[group.name]), key=lambda n: (host_order.get(n, len(host_order)), n))
        for name in names:
            node = index.nodes.get(name)
            if node is not None and node.group not in (None, group.name):
                continue  # a board listed in this group but registered under another: not ours here
            record = state.records.get(name)
            new_record, failure = _step(view, name, node, record, index, settings, now, backoff)
            booted = new_record is not None and new_record.phase in (NodePhase.IDLE, NodePhase.USED)
            if booted and record is not None and record.phase is NodePhase.POWERING_ON:
                group_failures.pop(group.name, None)  # a boot worked: the group is healthy again
            if new_record is None:
                records.pop(name, None)
            else:
                records[name] = new_record
            if failure is not None:
                failures.append(failure)
        if group.kind is GroupKind.CLOUD:
            # A VM that never came up says something about the group (quota, image): back off all of it.
            failed_at = [
                r.since for r in records.values() if r.group == group.name and r.phase is NodePhase.FAILED
            ]
            if any(f.group == group.name for f in failures):
                failed_at.append(now)
            if failed_at:
                view.backoff_until = max(view.backoff_until, max(failed_at) + backoff)
        view.active.sort(key=lambda n: n.name)
    new_state = replace(state, records=records, group_failures=group_failures)
    return Observation(new_state, views, tuple(failures))


def _step(
    view: GroupView,
    name: str,
    node: Node | None,
    record: NodeRecord | None,
    index: ClusterIndex,
    settings: ElasticitySettings,
    now: float,
    backoff: float,
) -> tuple[NodeRecord | None, MarkFailed | None]:
    """Classify one node into ``view`` and return its next record (None: forget it) and any failure."""
    group = view.group
    cloud = group.kind is GroupKind.CLOUD
    ready = node is not None and node.ready
    schedulable = ready and node is not None and not node.unschedulable
    phase = record.phase if record is not None else None

    leaving = phase in (NodePhase.DRAINING, NodePhase.POWERING_OFF)
    if schedulable and node is not None and not leaving and not (cloud and phase is NodePhase.FAILED):
        view.active.append(node)
        return _running(name, group.name, record, node, index, settings, now), None

    if leaving:
        if node is None:
            return (None if cloud else _off(name, group.name, record, now)), None
        powered_off = not ready or (group.kind is GroupKind.EDGE_ALWAYS_ON and node.unschedulable)
        if phase is NodePhase.POWERING_OFF and powered_off and not cloud:
            _add_wakeable(view, name, None, settings, now)
            return _off(name, group.name, record, now), None
        view.leaving.append(name)
        assert record is not None
        if phase is NodePhase.DRAINING:
            view.resume[name] = "resuming its drain"
        elif now - record.since >= settings.power_off_timeout:
            view.resume[name] = f"still there {now - record.since:.0f}s after power-off; retrying"
        return record, None

    if phase is NodePhase.FAILED:
        assert record is not None
        if cloud:
            if node is not None:
                view.unavailable.append(name)  # the actuator is removing it
                return record, None
            keep = now < record.since + backoff
            return (record if keep else None), None
        _add_wakeable(view, name, record, settings, now)
        return record, None

    if phase is NodePhase.POWERING_ON:
        assert record is not None
        if now - record.since > settings.provision_timeout:
            waited, limit = now - record.since, settings.provision_timeout
            reason = f"not Ready {waited:.0f}s after power-on (timeout {limit:.0f}s)"
            return record, MarkFailed(name, reason, group.name)
        view.booting.append(name)
        return record, None

    if cloud:
        if node is None:
            return None, None  # the VM is gone (removed by us or by someone else): nothing to remember
        if phase is None and not ready and now - node.created_at <= settings.provision_timeout:
            view.booting.append(name)  # registered by the IM before our records knew of it
            return record, None
        view.unavailable.append(name)
        if phase is None and not ready:
            reason = f"NotReady for {now - node.created_at:.0f}s (timeout {settings.provision_timeout:.0f}s)"
            return record, MarkFailed(name, reason, group.name)
        return record, None

    # Edge boards: dark, cordoned by us, or never seen are off and may be woken.
    if node is not None and ready and phase is not NodePhase.OFF:
        view.unavailable.append(name)  # Ready but cordoned by someone else: leave it alone
        return record, None
    _add_wakeable(view, name, record, settings, now)
    if phase in (NodePhase.IDLE, NodePhase.USED):
        return _off(name, group.name, record, now), None
    return record, None


def _add_wakeable(
    view: GroupView, name: str, record: NodeRecord | None, settings: ElasticitySettings, now: float
) -> None:
    if record is not None and record.phase is NodePhase.FAILED:
        if record.attempts >= settings.max_power_on_attempts:
            view.blocked[name] = f"failed {record.attempts} power-on attempts"
            return
        if now < record.since + settings.failure_backoff:
            view.blocked[name] = f"backing off until t={record.since + settings.failure_backoff:.0f}"
            return
    view.wakeable.append(name)


def _running(
    name: str,
    group: str,
    record: NodeRecord | None,
    node: Node,
    index: ClusterIndex,
    settings: ElasticitySettings,
    now: float,
) -> NodeRecord:
    idle = index.is_idle(name)
    phase = NodePhase.IDLE if idle else NodePhase.USED
    previous = record if record is not None and record.phase in (NodePhase.IDLE, NodePhase.USED) else None
    idle_since = None
    if idle:
        idle_since = previous.idle_since if previous is not None and previous.idle_since is not None else now
    under_since = None
    if (
        not idle
        and settings.scale_down_underutilized
        and index.utilization(node) < settings.utilization_threshold
    ):
        kept = previous.underutilized_since if previous is not None else None
        under_since = kept if kept is not None else now
    if previous is not None and previous.phase is phase:
        unchanged = (previous.group, previous.attempts, previous.idle_since, previous.underutilized_since)
        if unchanged == (group, 0, idle_since, under_since):
            return previous  # the common case: nothing to write
    since = previous.since if previous is not None and previous.phase is phase else now
    return NodeRecord(
        name=name,
        group=group,
        phase=phase,
        since=since,
        attempts=0,
        idle_since=idle_since,
        vm_id=record.vm_id if record is not None else None,
        underutilized_since=under_since,
    )


def _off(name: str, group: str, record: NodeRecord | None, now: float) -> NodeRecord:
    if record is not None and record.phase is NodePhase.OFF:
        return record
    attempts = record.attempts if record is not None else 0
    return NodeRecord(name=name, group=group, phase=NodePhase.OFF, since=now, attempts=attempts)


# --- transitions written by the actuator -------------------------------------------------------------


def _with_records(state: ElasticityState, changed: Iterable[NodeRecord]) -> ElasticityState:
    records = dict(state.records)
    for record in changed:
        records[record.name] = record
    return replace(state, records=records)


def record_powering_on(
    state: ElasticityState,
    group: str,
    nodes: Sequence[str],
    now: float,
    vm_ids: Mapping[str, str] | None = None,
) -> ElasticityState:
    """After a ScaleUp was sent: each new node boots (cloud: names the IM gave; edge: ``ScaleUp.nodes``)."""
    changed = []
    for name in nodes:
        previous = state.records.get(name)
        attempts = (previous.attempts if previous is not None else 0) + 1
        vm_id = (vm_ids or {}).get(name, previous.vm_id if previous is not None else None)
        changed.append(NodeRecord(name, group, NodePhase.POWERING_ON, now, attempts=attempts, vm_id=vm_id))
    new = _with_records(state, changed)
    rounds = (*state.scale_up_rounds.get(group, ()), now)[-DEMAND_MEMORY:]
    return replace(
        new,
        last_scale_up={**state.last_scale_up, group: now},
        scale_up_rounds={**state.scale_up_rounds, group: rounds},
    )


def record_draining(state: ElasticityState, group: str, nodes: Sequence[str], now: float) -> ElasticityState:
    """After the nodes of a ScaleDown were cordoned: they are being drained."""
    return _transition(state, group, nodes, NodePhase.DRAINING, now)


def record_powering_off(
    state: ElasticityState, group: str, nodes: Sequence[str], now: float
) -> ElasticityState:
    """After the drain finished and the power-off (IM removal, SSH shutdown, cordon) was sent."""
    new = _transition(state, group, nodes, NodePhase.POWERING_OFF, now)
    return replace(new, last_scale_down={**state.last_scale_down, group: now})


def record_failed(state: ElasticityState, failure: MarkFailed, now: float) -> ElasticityState:
    """After a MarkFailed was acted on (cloud VM removed, board given up on for now)."""
    previous = state.records.get(failure.node)
    group = failure.group or (previous.group if previous is not None else "")
    attempts = previous.attempts if previous is not None else 0
    vm_id = previous.vm_id if previous is not None else None
    new = _with_records(
        state, [NodeRecord(failure.node, group, NodePhase.FAILED, now, attempts, vm_id=vm_id)]
    )
    in_a_row = state.group_failures.get(group, 0) + 1
    return replace(new, group_failures={**state.group_failures, group: in_a_row})


def record_group_error(
    state: ElasticityState, group: str, now: float, settings: ElasticitySettings
) -> ElasticityState:
    """A power-on call for the group failed outright (IM 500, quota): try other groups for a while."""
    until = max(state.group_backoff_until.get(group, 0.0), now + settings.failure_backoff)
    return replace(state, group_backoff_until={**state.group_backoff_until, group: until})


def _transition(
    state: ElasticityState, group: str, nodes: Sequence[str], phase: NodePhase, now: float
) -> ElasticityState:
    changed = []
    for name in nodes:
        previous = state.records.get(name)
        if previous is None:
            changed.append(NodeRecord(name, group, phase, now))
        else:
            changed.append(replace(previous, phase=phase, since=now))
    return _with_records(state, changed)


def idle_limit(group: NodeGroup, settings: ElasticitySettings) -> float:
    """How long an empty node of ``group`` stays before it is removed.

    "break-even" is the ski-rental rule: keeping an idle node costs node-time at the rate of a running one,
    while removing it and booting another when work comes back costs about ``boot_seconds +
    shutdown_seconds`` of node-time. Waiting exactly that long before removing spends at most twice the
    node-time of the best choice made with hindsight (the deterministic 2-competitive rule), and waiting
    longer than ``idle_time`` is never done. ``idle_floor`` keeps a node across a few resyncs, so that a
    queue that empties and refills within seconds does not cycle fast-booting nodes.
    """
    if settings.idle_policy in ("break-even", "demand"):
        return min(settings.idle_time, max(settings.idle_floor, group.boot_seconds + group.shutdown_seconds))
    return settings.idle_time


def sparse_demand(group: NodeGroup, state: ElasticityState, now: float) -> str | None:
    """Why an idle node of the group is not worth keeping warm, or None when it may be (or nothing is known).

    Keeping a node idle pays when new work needs it soon: it then saves one boot of waiting for the pod
    and the boot and shutdown of a re-boot (``saved``: 2 boots + shutdown, at one node-second per
    pod-second of waiting). Demand is read from the group's latest scale-up rounds: it is too rare when the
    group last grew longer than ``saved`` ago (arrivals come in bursts, so a long quiet spell predicts a
    long one ahead), or when its rounds, counted up to now, came more rarely than once per ``saved``.
    No round seen: nothing is known.
    """
    rounds = state.scale_up_rounds.get(group.name, ())
    if not rounds:
        return None
    saved = 2 * group.boot_seconds + group.shutdown_seconds
    worth = "keeping it warm costs more than the boots it saves"
    quiet = now - rounds[-1]
    if quiet > saved:
        return (
            f"group {group.name} last grew {quiet:.0f}s ago, over {saved:.0f}s (2 boots + shutdown): {worth}"
        )
    span = now - rounds[0]
    if len(rounds) >= 2 and len(rounds) * saved < span:
        return (
            f"group {group.name} grew {len(rounds)} times in the last {span / 60:.0f} min, less than once "
            f"per {saved:.0f}s (2 boots + shutdown): {worth}"
        )
    return None
