"""Scale-up: find room for every pending pod, on existing nodes, then booting nodes, then new nodes.

Pending pods are bin-packed (first-fit decreasing over equivalence classes) onto the free capacity of
Ready nodes, then onto nodes still booting (their group's shape), and what is left grows groups: each
eligible group estimates how many new nodes would place which pods, the expander chain picks one, and
the step repeats with the pods still left and the groups not yet chosen. A group grows at most once per
round (one batched ScaleUp with a count). Pods that no group and no node could ever hold are unplaceable
and never cause growth. Called by ``plan()``; returns plain values plus the bins it filled, which the
scale-down planner reuses as the room left for evicted pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from deployer.core.elasticity.binpack import Bin, Packer, PodClass, pod_classes
from deployer.core.elasticity.expanders import Option, choose
from deployer.core.elasticity.index import ClusterIndex
from deployer.core.elasticity.lifecycle import GroupView
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    NodeGroup,
    Resources,
    ScaleUp,
    Unplaceable,
)
from deployer.core.elasticity.scheduling import label_mismatch, shortfall, template_labels


@dataclass(slots=True)
class ScaleUpResult:
    scale_ups: tuple[ScaleUp, ...]
    unplaceable: tuple[Unplaceable, ...]
    explanations: dict[str, str]
    node_bins: list[Bin]  # Ready nodes with what pending pods left free, in first-fit order
    claimed: set[str] = field(default_factory=set)  # Ready nodes that pending pods were packed onto


@dataclass(slots=True)
class _Limits:
    """Room left this round, cluster-wide; None means unlimited."""

    total: int | None
    booting: int | None

    def cap(self, wanted: int) -> int:
        for room in (self.total, self.booting):
            if room is not None:
                wanted = min(wanted, room)
        return max(wanted, 0)

    def spend(self, count: int) -> None:
        if self.total is not None:
            self.total -= count
        if self.booting is not None:
            self.booting -= count


def template_bin(group: NodeGroup, name: str, source: str, used: Resources | None = None) -> Bin:
    free = group.shape - used if used is not None else group.shape
    return Bin.of(name, group.name, template_labels(group), group.taints, free, source, ("group", group.name))


def scale_up(
    index: ClusterIndex,
    views: Mapping[str, GroupView],
    state: ElasticityState,
    settings: ElasticitySettings,
    now: float,
) -> ScaleUpResult:
    explanations: dict[str, str] = {}
    cache: dict[tuple[int, object], bool] = {}
    packer = Packer(cache)
    classes = pod_classes(index.pending)

    node_bins = _node_bins(index, views)
    left = packer.pack(classes, node_bins)
    booting_bins = [
        template_bin(view.group, name, "booting", index.used.get(name))
        for view in views.values()
        for name in view.booting
    ]
    left = packer.pack(left, booting_bins)
    for uid, b in packer.placements.items():
        if b.source == "node":
            explanations[uid] = f"fits on node {b.name}: waiting for the scheduler to bind it"
        else:
            explanations[uid] = f"will run on {b.name} of group {b.group}, booting"

    limits = _Limits(
        total=(settings.max_nodes_total - sum(v.size for v in views.values()))
        if settings.max_nodes_total
        else None,
        booting=(settings.max_booting - sum(len(v.booting) for v in views.values()))
        if settings.max_booting
        else None,
    )
    blocked = {name: why for name, view in views.items() if (why := _blocked(view, state, settings, now))}
    planned: dict[str, int] = {}
    reasons: dict[str, list[str]] = {}
    pods_of: dict[str, list[str]] = {}

    # Groups below their minimum grow first; the pods may use those nodes too.
    for name, view in sorted(views.items()):
        deficit = view.group.min_size - view.staying
        if deficit <= 0 or name in blocked:
            continue
        count = limits.cap(min(deficit, _group_room(view)))
        if count <= 0:
            continue
        limits.spend(count)
        planned[name] = count
        reasons[name] = [f"below min size ({view.staying} < {view.group.min_size})"]
        new_bins = [template_bin(view.group, f"{name}+{i + 1}", "new") for i in range(count)]
        before = set(packer.placements)
        left = packer.pack(left, new_bins)
        pods_of[name] = [uid for uid in packer.placements if uid not in before]

    left = _grow(left, views, planned, blocked, limits, settings, cache, pods_of, reasons)

    scale_ups = []
    for name in sorted(planned):
        view = views[name]
        uids = tuple(sorted(pods_of.get(name, ())))
        for uid in uids:
            explanations[uid] = f"scale-up of group {name} by {planned[name]}"
        wake = tuple(view.wakeable[: planned[name]]) if view.group.kind is not GroupKind.CLOUD else ()
        scale_ups.append(ScaleUp(name, planned[name], "; ".join(reasons[name]), uids, wake))

    unplaceable = []
    for cls in left:
        reason = _never_fits(cls, views, index)
        waiting = (
            _waiting_reason(cls, views, planned, blocked, limits, settings, cache) if reason is None else ""
        )
        for pod in cls.pods:
            if reason is not None:
                unplaceable.append(Unplaceable(pod.uid, reason))
                explanations[pod.uid] = f"unplaceable: {reason}"
            else:
                explanations[pod.uid] = f"waiting: {waiting}"
    claimed = {b.name for b in node_bins if b.placed}
    unplaceable.sort(key=lambda u: u.pod_uid)
    return ScaleUpResult(tuple(scale_ups), tuple(unplaceable), explanations, node_bins, claimed)


def _grow(
    left: list[PodClass],
    views: Mapping[str, GroupView],
    planned: dict[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    settings: ElasticitySettings,
    cache: dict[tuple[int, object], bool],
    pods_of: dict[str, list[str]],
    reasons: dict[str, list[str]],
) -> list[PodClass]:
    """Repeatedly let the expander chain pick one group to grow for the pods still left."""
    # Pods that only few groups can hold go first in every estimate, so that a flexible pod never takes
    # the last room of the only group a constrained pod (say arm64-only) could use.
    fits = {id(c.exemplar): sum(_fits_template(c, v.group, cache) for v in views.values()) for c in left}
    chosen: set[str] = set()
    while left:
        options = []
        for name, view in sorted(views.items()):
            room = 0 if name in blocked else limits.cap(_group_room(view) - planned.get(name, 0))
            if name in chosen or room <= 0:
                continue
            group = view.group
            fitting = [c for c in left if _fits_template(c, group, cache)]
            fitting.sort(key=lambda c: fits[id(c.exemplar)])  # stable: FFD order within equal flexibility
            trial = Packer(cache)
            bins, _ = trial.open_bins(
                fitting, lambda i, g=group, n=name: template_bin(g, f"{n}+new{i + 1}", "new"), room
            )
            if bins:
                options.append(Option(group, len(bins), tuple(trial.placements), _waste(bins, group.shape)))
        if not options:
            break
        best = choose(options, settings.expanders)
        name = best.group.name
        chosen.add(name)
        limits.spend(best.count)
        planned[name] = planned.get(name, 0) + best.count
        pods_of.setdefault(name, []).extend(best.pod_uids)
        reasons.setdefault(name, []).append(f"{len(best.pod_uids)} pending pods need {best.count} new nodes")
        placed = set(best.pod_uids)
        left = [c.with_pods(rest) for c in left if (rest := [p for p in c.pods if p.uid not in placed])]
    return left


def _waiting_reason(
    cls: PodClass,
    views: Mapping[str, GroupView],
    planned: Mapping[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    settings: ElasticitySettings,
    cache: dict[tuple[int, object], bool],
) -> str:
    """Why a placeable pod got no new node this round: each group that could hold it, and what stops it."""
    why = []
    for name, view in sorted(views.items()):
        if not _fits_template(cls, view.group, cache):
            continue
        if name in blocked:
            why.append(blocked[name])
        else:
            why.append(_no_room_reason(view, planned.get(name, 0), limits, settings))
    return "; ".join(why) or "only existing nodes could hold it, and they are full"


def _node_bins(index: ClusterIndex, views: Mapping[str, GroupView]) -> list[Bin]:
    """Ready, schedulable nodes that are not on their way out: busiest first, so idle ones stay idle."""
    not_usable = set()
    for view in views.values():
        not_usable.update(view.leaving, view.unavailable, view.booting)
    candidates = [
        n for n in index.nodes.values() if n.ready and not n.unschedulable and n.name not in not_usable
    ]
    candidates.sort(key=lambda n: (index.is_idle(n.name), n.name))
    return [Bin.of(n.name, n.group, n.labels, n.taints, index.free(n), "node") for n in candidates]


def _group_room(view: GroupView) -> int:
    room = view.max_size - view.size
    if view.group.kind is not GroupKind.CLOUD:
        room = min(room, len(view.wakeable))
    return room


def _blocked(view: GroupView, state: ElasticityState, settings: ElasticitySettings, now: float) -> str | None:
    if now < view.backoff_until:
        return f"group {view.group.name} backing off after a failure until t={view.backoff_until:.0f}"
    last = state.last_scale_up.get(view.group.name)
    if settings.scale_up_cooldown and last is not None and now - last < settings.scale_up_cooldown:
        return f"group {view.group.name} cooling down until t={last + settings.scale_up_cooldown:.0f}"
    return None


def _no_room_reason(view: GroupView, planned: int, limits: _Limits, settings: ElasticitySettings) -> str:
    name = view.group.name
    if _group_room(view) - planned <= 0:
        edge = view.group.kind is not GroupKind.CLOUD
        if edge and len(view.wakeable) <= planned and view.size + planned < view.max_size:
            return f"group {name} has no board to wake" + (
                f" ({', '.join(view.blocked.values())})" if view.blocked else ""
            )
        return f"group {name} at max size ({view.max_size})"
    if limits.total is not None and limits.total <= 0:
        return f"cluster at max_nodes_total ({settings.max_nodes_total})"
    if limits.booting is not None and limits.booting <= 0:
        return f"max_booting ({settings.max_booting}) nodes already booting"
    return f"group {name} grows this round already; next round"


def _fits_template(cls: PodClass, group: NodeGroup, cache: dict[tuple[int, object], bool]) -> bool:
    key = (id(cls.exemplar), ("template", group.name))
    hit = cache.get(key)
    if hit is None:
        hit = shortfall(cls.requests, group.shape) is None and (
            label_mismatch(cls.exemplar, template_labels(group), group.taints) is None
        )
        cache[key] = hit
    return hit


def _never_fits(cls: PodClass, views: Mapping[str, GroupView], index: ClusterIndex) -> str | None:
    """Why no group and no existing node could ever run this class (even empty), or None if one could."""
    pod = cls.exemplar
    why = []
    for name, view in sorted(views.items()):
        group = view.group
        reason = shortfall(pod.requests, group.shape) or label_mismatch(
            pod, template_labels(group), group.taints
        )
        if reason is None:
            return None
        why.append(f"{name}: {reason}")
    for node in index.nodes.values():
        if (
            shortfall(pod.requests, node.allocatable) is None
            and label_mismatch(pod, node.labels, node.taints) is None
        ):
            return None
    return "; ".join(why) if why else "no node groups"


def _waste(bins: Sequence[Bin], shape: Resources) -> float:
    shares = []
    for have, total in (
        (sum(b.cpu_m for b in bins), shape.cpu_m),
        (sum(b.memory_mib for b in bins), shape.memory_mib),
    ):
        if total > 0:
            shares.append(have / (total * len(bins)))
    return sum(shares) / len(shares) if shares else 0.0
