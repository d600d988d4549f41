"""Scale-down: which Ready nodes of our groups to drain and power off, never disrupting what must not be.

A node is a candidate when it has been idle (no pods but DaemonSet and mirror pods) for ``idle_limit()``
(``idle_time``, or with the break-even policy the shorter time a re-boot of its group costs; with the
"demand" policy only ``idle_floor`` while its group needs new nodes rarely: ``sparse_demand``), or, when
enabled, underutilised (requests below ``utilization_threshold``) for ``idle_time`` with every pod
evictable and placeable on the room left elsewhere (after the pending pods took theirs). Protected,
never chosen: nodes annotated scale-down-disabled, nodes the pending pods were packed onto, nodes with an
unfinished Job pod, a bare pod, a safe-to-evict=false pod or a pod a PodDisruptionBudget would block,
groups at ``min_size``, groups that just grew (``scale_down_cooldown``), and the last ``min_spare_nodes``
idle nodes. The most expensive nodes go first, so spare capacity left behind is the cheapest.
Called by ``plan()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from deployer.core.elasticity.binpack import Bin, BinIndex, Packer, pod_classes
from deployer.core.elasticity.index import ClusterIndex
from deployer.core.elasticity.lifecycle import GroupView, idle_limit, sparse_demand
from deployer.core.elasticity.model import (
    DisruptionBudget,
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    Node,
    NodePhase,
    OwnerKind,
    Pod,
    ScaleDown,
)
from deployer.core.elasticity.scaleup import node_bins_of
from deployer.core.elasticity.scheduling import SAFE_TO_EVICT, SCALE_DOWN_DISABLED


@dataclass(frozen=True, slots=True)
class _Candidate:
    node: Node
    view: GroupView
    idle: bool
    since: float  # idle (or underutilised) since
    sparse: str | None = None  # why its group's demand is too rare to keep it warm (the "demand" policy)


def eviction_blocker(pod: Pod) -> str | None:
    """Why evicting this pod would lose work, ignoring budgets; None when a controller recreates it."""
    safe = pod.annotations.get(SAFE_TO_EVICT)
    if safe == "false":
        return f"pod {pod.namespace}/{pod.name} is annotated {SAFE_TO_EVICT}=false"
    if safe == "true":
        return None  # the owner says losing it is fine
    if pod.owner_kind is OwnerKind.JOB:
        return f"job pod {pod.namespace}/{pod.name} has not finished"
    if pod.owner_kind is OwnerKind.BARE:
        return f"bare pod {pod.namespace}/{pod.name} would not be recreated"
    return None


def _budgets_for(pod: Pod, budgets: tuple[DisruptionBudget, ...]) -> list[int]:
    return [
        i
        for i, b in enumerate(budgets)
        if b.namespace == pod.namespace and all(pod.labels.get(k) == v for k, v in b.match_labels.items())
    ]


def scale_down(
    index: ClusterIndex,
    views: Mapping[str, GroupView],
    state: ElasticityState,
    settings: ElasticitySettings,
    now: float,
    node_bins: list[Bin] | None,
    claimed: set[str],
    growing: set[str],
    budgets: tuple[DisruptionBudget, ...],
) -> tuple[tuple[ScaleDown, ...], dict[str, str]]:
    """The ScaleDowns (one per group) and, per protected idle-ish node, why it stays."""
    claimed = set(claimed)  # grows with the nodes that receive moved pods
    kept: dict[str, str] = {}
    candidates = _candidates(index, views, state, settings, now, claimed, growing, kept)
    removable = {name: max(view.staying - view.group.min_size, 0) for name, view in views.items()}
    # Spare: idle and not about to receive a pending pod.
    idle_total = sum(
        1 for view in views.values() for n in view.active if index.is_idle(n.name) and n.name not in claimed
    )
    spare_left = idle_total - settings.min_spare_nodes
    budget_used = [0] * len(budgets)
    room = _Room(index, views, node_bins)
    drains_left = settings.max_drains_per_round or len(candidates)
    chosen: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    for cand in candidates:
        group = cand.view.group.name
        name = cand.node.name
        if name in claimed:
            kept[name] = "receives pods moved off another node"
            continue
        if removable[group] <= 0:
            kept[name] = f"group {group} at min size ({cand.view.group.min_size})"
            continue
        if cand.idle:
            if spare_left <= 0:
                kept[name] = f"kept as one of min_spare_nodes ({settings.min_spare_nodes})"
                continue
            spare_left -= 1
            reason = f"{name} idle for {now - cand.since:.0f}s" + (f" ({cand.sparse})" if cand.sparse else "")
        else:
            if drains_left <= 0:
                kept[name] = f"max_drains_per_round ({settings.max_drains_per_round}) reached"
                continue
            pods = index.workload.get(name, [])
            blocker = _evict_all(pods, room.bin(name), budgets, budget_used, room.targets(), claimed)
            if blocker is not None:
                kept[name] = blocker
                continue
            drains_left -= 1
            reason = f"{name} under {settings.utilization_threshold:.0%} utilised, pods fit elsewhere"
        removable[group] -= 1
        room.remove(name)
        chosen.setdefault(group, []).append(name)
        reasons.setdefault(group, []).append(reason)
    for group, view in views.items():
        for name, why in view.resume.items():
            chosen.setdefault(group, []).append(name)
            reasons.setdefault(group, []).append(f"{name}: {why}")
    downs = tuple(
        ScaleDown(group, tuple(sorted(nodes)), "; ".join(reasons[group]))
        for group, nodes in sorted(chosen.items())
    )
    return downs, kept


class _Room:
    """Where evicted pods may go: the nodes' room left by the pending pods, built on first use only."""

    def __init__(self, index: ClusterIndex, views: Mapping[str, GroupView], bins: list[Bin] | None) -> None:
        self._cluster, self._views, self._bins = index, views, bins
        self._built: tuple[dict[str, Bin], BinIndex] | None = None
        self._removed: list[str] = []

    def _build(self) -> tuple[dict[str, Bin], BinIndex]:
        if self._built is None:
            bins = self._bins if self._bins is not None else node_bins_of(self._cluster, self._views)
            by_name = {b.name: b for b in bins}
            targets = Packer().index(bins)
            for name in self._removed:
                if name in by_name:
                    targets.disable(by_name[name])
            self._built = (by_name, targets)
        return self._built

    def targets(self) -> BinIndex:
        return self._build()[1]

    def bin(self, name: str) -> Bin | None:
        return self._build()[0].get(name)

    def remove(self, name: str) -> None:
        """The node leaves this round: nothing may move onto it."""
        if self._built is None:
            self._removed.append(name)
            return
        by_name, targets = self._built
        if name in by_name:
            targets.disable(by_name[name])


def _candidates(
    index: ClusterIndex,
    views: Mapping[str, GroupView],
    state: ElasticityState,
    settings: ElasticitySettings,
    now: float,
    claimed: set[str],
    growing: set[str],
    kept: dict[str, str],
) -> list[_Candidate]:
    found = []
    for name, view in views.items():
        last_up = state.last_scale_up.get(name)
        cooling = last_up is not None and now - last_up < settings.scale_down_cooldown
        break_even = empty_wait = idle_limit(view.group, settings)
        sparse = sparse_demand(view.group, state, now) if settings.idle_policy == "demand" else None
        if sparse is not None:
            empty_wait = min(empty_wait, settings.idle_floor)
        for node in view.active:
            record = state.records.get(node.name)
            if record is None or record.phase not in (NodePhase.IDLE, NodePhase.USED):
                continue
            idle = record.phase is NodePhase.IDLE and record.idle_since is not None
            since = record.idle_since if idle else record.underutilized_since
            # Moving pods off an underutilised node disrupts them: that always waits the full idle_time.
            if since is None or now - since < (empty_wait if idle else settings.idle_time):
                continue
            if node.annotations.get(SCALE_DOWN_DISABLED) == "true":
                kept[node.name] = f"annotated {SCALE_DOWN_DISABLED}=true"
            elif node.name in claimed:
                kept[node.name] = "pending pods fit on it"
            elif name in growing:
                kept[node.name] = f"group {name} is growing this round"
            elif cooling:
                kept[node.name] = f"group {name} grew less than {settings.scale_down_cooldown:.0f}s ago"
            else:
                early = idle and now - since < break_even  # gone sooner than break-even: say why
                found.append(_Candidate(node, view, idle, since, sparse if early else None))

    def order(c: _Candidate) -> tuple[object, ...]:
        group = c.view.group
        # Rented VMs before owned boards, dearer first, empty before busy, longest unneeded first.
        return (group.kind is not GroupKind.CLOUD, -group.cost_per_hour, not c.idle, c.since, c.node.name)

    found.sort(key=order)
    return found


def _evict_all(
    pods: list[Pod],
    own: Bin | None,
    budgets: tuple[DisruptionBudget, ...],
    budget_used: list[int],
    targets: BinIndex,
    claimed: set[str],
) -> str | None:
    """Reserve budgets and room for moving every pod off ``node``; undo and say why if any pod can't go."""
    need = [0] * len(budgets)
    pods = sorted(
        pods, key=lambda p: (p.namespace, p.name, p.uid)
    )  # the reason must not depend on input order
    for pod in pods:
        blocker = eviction_blocker(pod)
        if blocker is not None:
            return blocker
        for i in _budgets_for(pod, budgets):
            need[i] += 1
            if budget_used[i] + need[i] > budgets[i].disruptions_allowed:
                return f"pod {pod.namespace}/{pod.name}: PodDisruptionBudget allows no more disruptions"
    if own is not None:
        targets.disable(own)  # its pods cannot stay on it
    trial = Packer()
    if trial.pack(pod_classes(pods), targets):
        by_uid = {p.uid: p for p in pods}
        for uid, b in trial.placements.items():
            b.take(by_uid[uid].requests, -1)  # give the room back
            targets.refresh(b)
        if own is not None:
            targets.enable(own)
        return "its pods do not fit on the other nodes"
    for i, n in enumerate(need):
        budget_used[i] += n
    claimed.update(b.name for b in trial.placements.values())  # receivers must stay this round
    return None
