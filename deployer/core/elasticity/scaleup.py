"""Scale-up: find room for every pending pod, on existing nodes, then booting nodes, then new nodes.

Pending pods are bin-packed (first-fit decreasing over equivalence classes) onto the free capacity of
Ready nodes, then onto nodes still booting (their group's shape), and what is left grows groups: each
eligible group estimates how many new nodes would place which pods, the expander chain picks one, and
the step repeats with the pods still left and the groups not yet chosen. A group grows at most once per
round (one batched ScaleUp with a count). Groups below ``min_size`` grow to it first, and when fewer than
``min_spare_nodes`` idle or booting nodes are left free, empty nodes boot for the next burst (the same
expander chain picks where). Pods that no group and no node could ever hold are unplaceable and never
cause growth. Called by ``plan()``; returns plain values plus the bins it filled, which the
scale-down planner reuses as the room left for evicted pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from deployer.core.elasticity.binpack import Bin, FeasibilityCache, Packer, PodClass, pod_classes
from deployer.core.elasticity.expanders import Option, choose
from deployer.core.elasticity.index import ClusterIndex
from deployer.core.elasticity.lifecycle import GroupView, idle_limit
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    NodeGroup,
    Resources,
    ScaleUp,
    Unplaceable,
)
from deployer.core.elasticity.runtimes import Estimator, RuntimeModel, workload_class
from deployer.core.elasticity.scheduling import label_mismatch, shortfall, template_labels


@dataclass(slots=True)
class ScaleUpResult:
    scale_ups: tuple[ScaleUp, ...]
    unplaceable: tuple[Unplaceable, ...]
    explanations: dict[str, str]
    # Ready nodes with what pending pods left free, in first-fit order; None when nothing was pending
    # (then nothing was packed and the scale-down builds them only if it needs them).
    node_bins: list[Bin] | None
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
    runtimes: RuntimeModel | None = None,
) -> ScaleUpResult:
    explanations: dict[str, str] = {}
    cache: FeasibilityCache = {}
    packer = Packer(cache)
    classes = pod_classes(index.pending)

    node_bins = node_bins_of(index, views) if classes else []
    left = packer.pack(classes, node_bins)
    booting_bins = [
        template_bin(view.group, name, "booting", index.used(name))
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
    deficit_bins: list[Bin] = []

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
        deficit_bins.extend(new_bins)
        before = set(packer.placements)
        left = packer.pack(left, new_bins)
        pods_of[name] = [uid for uid in packer.placements if uid not in before]

    fit = _TemplateFit(views, cache)
    awaited: set[str] = set()  # nodes whose freed room pending pods wait for
    if runtimes is not None and settings.wait_for_room != "never" and left:
        left = _wait_for_freed_room(
            left,
            index,
            views,
            node_bins,
            runtimes,
            settings,
            now,
            fit,
            cache,
            planned,
            blocked,
            limits,
            explanations,
            awaited,
        )
    left = _grow(left, views, planned, blocked, limits, settings, fit, cache, pods_of, reasons)
    if settings.min_spare_nodes:
        taken = {b.name for b in node_bins if b.placed}
        idle = sum(
            1 for v in views.values() for n in v.active if index.is_idle(n.name) and n.name not in taken
        )
        empty = idle + sum(1 for b in (*booting_bins, *deficit_bins) if not b.placed)
        _keep_spares(settings.min_spare_nodes - empty, views, planned, blocked, limits, settings, reasons)

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
        reason = _never_fits(cls, views, index, fit)
        waiting = (
            _waiting_reason(cls, views, planned, blocked, limits, settings, fit) if reason is None else ""
        )
        for pod in cls.pods:
            if reason is not None:
                unplaceable.append(Unplaceable(pod.uid, reason))
                explanations[pod.uid] = f"unplaceable: {reason}"
            else:
                explanations[pod.uid] = f"waiting: {waiting}"
    claimed = {b.name for b in node_bins if b.placed} | awaited
    unplaceable.sort(key=lambda u: u.pod_uid)
    bins_out = node_bins if classes else None
    return ScaleUpResult(tuple(scale_ups), tuple(unplaceable), explanations, bins_out, claimed)


def _wait_for_freed_room(
    left: list[PodClass],
    index: ClusterIndex,
    views: Mapping[str, GroupView],
    node_bins: list[Bin],
    runtimes: RuntimeModel,
    settings: ElasticitySettings,
    now: float,
    fit: _TemplateFit,
    cache: FeasibilityCache,
    planned: Mapping[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    explanations: dict[str, str],
    awaited: set[str],
) -> list[PodClass]:
    """Keep pods waiting when running pods of known run time free room for them soon enough.

    A pending pod waits instead of growing a group when, on some Ready node, the room left free plus what
    running pods of classes with learned run times (``runtimes``) release is expected to hold it by
    ``created_at + room_wait_limit()`` of the fastest group that could grow for it now. Past that deadline
    (the estimate was wrong) it grows a group as without a model, so a wrong estimate delays a pod by at
    most that limit. Running pods without an estimate (unknown class, too few finished pods, or running
    longer than those seen) free nothing here, so a model without a matching class changes no decision.
    """
    estimator = Estimator(runtimes)
    growable = [view.group for name, view in views.items() if _can_grow(name, view, planned, blocked, limits)]
    # Per usable node: (expected end, requests) of its running pods with an estimate, soonest first.
    ends: dict[str, list[tuple[float, Resources]]] = {}
    for b in node_bins:
        known = []
        for pod in index.workload.get(b.name, ()):
            if pod.started_at is None:
                continue
            rest = estimator.remaining(workload_class(pod), now - pod.started_at)
            if rest is not None:
                known.append((now + rest, pod.requests))
        if known:
            ends[b.name] = sorted(known, key=lambda item: item[0])
    if not ends:
        return left
    candidates = [b for b in node_bins if b.name in ends]
    reserved: dict[str, Resources] = {}
    still: list[PodClass] = []
    for cls in left:
        run_time = estimator.median(workload_class(cls.exemplar))
        horizon = min(
            (room_wait_limit(g, settings, run_time) for g in growable if g.name in fit.groups(cls)),
            default=None,
        )
        waiting = [p for p in cls.pods if p.created_at + horizon > now] if horizon is not None else []
        if horizon is None or not waiting:
            still.append(cls)
            continue
        deadline = min(p.created_at for p in waiting) + horizon  # the oldest pod's: holds for all
        bins, freed_by = [], {}
        for b in candidates:
            ending = [(end, r) for end, r in ends[b.name] if end <= deadline]
            freed = sum((r for _, r in ending), Resources())
            room = Resources(b.cpu_m, b.memory_mib, b.gpu, b.pods) + freed - reserved.get(b.name, Resources())
            if cls.requests.fits_in(room):  # only nodes that could hold one: a small index to pack into
                bins.append(Bin.of(b.name, b.group, b.labels, b.taints, room, "freeing", b.signature))
                freed_by[b.name] = ending[-1][0] if ending else now
        trial = Packer(cache)
        trial.pack([cls.with_pods(waiting)], bins)
        for uid, b in trial.placements.items():
            explanations[uid] = (
                f"waiting for room on node {b.name}: pods running there are expected to end by "
                f"t={freed_by[b.name]:.0f} (run times learned from finished pods of their class); a pod "
                f"waits up to {horizon:.0f}s from its creation for such room before a group grows for it "
                f"(wait_for_room: {settings.wait_for_room})"
            )
            reserved[b.name] = reserved.get(b.name, Resources()) + cls.requests
            awaited.add(b.name)
        placed = set(trial.placements)
        unplaced = [p for p in cls.pods if p.uid not in placed]
        if unplaced:
            still.append(cls.with_pods(unplaced))
    return still


def room_wait_limit(group: NodeGroup, settings: ElasticitySettings, run_time: float | None) -> float:
    """How long after its creation a pod may wait for freed room rather than for a new node of ``group``.

    "boot": the group's boot time, so the pod starts no later than on a node booted at its arrival.
    "break-even": the node-time a new node booted for this pod alone would cost: its overhead (boot, idle
    limit, shutdown) plus the pod's typical run time on it (``run_time``, learned for its class; 0 when
    unknown), the run time counted up to the overhead. Waiting up to that long spends at most as many
    pod-seconds waiting as the boot would spend node-seconds (the ski-rental balance of the break-even
    idle policy), and never more than twice the overhead.
    """
    if settings.wait_for_room == "break-even":
        overhead = group.boot_seconds + idle_limit(group, settings) + group.shutdown_seconds
        return overhead + min(run_time or 0.0, overhead)
    return group.boot_seconds


def _grow(
    left: list[PodClass],
    views: Mapping[str, GroupView],
    planned: dict[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    settings: ElasticitySettings,
    fit: _TemplateFit,
    cache: FeasibilityCache,
    pods_of: dict[str, list[str]],
    reasons: dict[str, list[str]],
) -> list[PodClass]:
    """Repeatedly let the expander chain pick one group to grow for the pods still left."""
    if not _growable(views, planned, blocked, limits):
        return left  # a backlog with every group at max, blocked or capped: nothing to estimate
    # Pods that only few groups can hold go first in every estimate, so that a flexible pod never takes
    # the last room of the only group a constrained pod (say arm64-only) could use.
    fits = {id(c.exemplar): len(fit.groups(c)) for c in left}
    chosen: set[str] = set()
    while left:
        options = []
        for name, view in sorted(views.items()):
            if name in chosen or not _can_grow(name, view, planned, blocked, limits):
                continue
            room = limits.cap(_group_room(view) - planned.get(name, 0))
            group = view.group
            fitting = [c for c in left if name in fit.groups(c)]
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


def _keep_spares(
    missing: int,
    views: Mapping[str, GroupView],
    planned: dict[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    settings: ElasticitySettings,
    reasons: dict[str, list[str]],
) -> None:
    """Boot empty nodes until ``min_spare_nodes`` idle or booting nodes are free for the next burst."""
    tried: set[str] = set()
    while missing > 0:
        options = []
        for name, view in sorted(views.items()):
            if name in tried or name in blocked:
                continue
            room = limits.cap(min(missing, _group_room(view) - planned.get(name, 0)))
            if room > 0:
                options.append(Option(view.group, room, (), 1.0))
        if not options:
            return
        best = choose(options, settings.expanders)
        name = best.group.name
        tried.add(name)
        limits.spend(best.count)
        missing -= best.count
        planned[name] = planned.get(name, 0) + best.count
        reasons.setdefault(name, []).append(f"keeping {settings.min_spare_nodes} spare nodes")


def _waiting_reason(
    cls: PodClass,
    views: Mapping[str, GroupView],
    planned: Mapping[str, int],
    blocked: Mapping[str, str],
    limits: _Limits,
    settings: ElasticitySettings,
    fit: _TemplateFit,
) -> str:
    """Why a placeable pod got no new node this round: each group that could hold it, and what stops it."""
    why = []
    for name, view in sorted(views.items()):
        if name not in fit.groups(cls):
            continue
        if name in blocked:
            why.append(blocked[name])
        else:
            why.append(_no_room_reason(view, planned.get(name, 0), limits, settings))
    return "; ".join(why) or "only existing nodes could hold it, and they are full"


def node_bins_of(index: ClusterIndex, views: Mapping[str, GroupView]) -> list[Bin]:
    """Ready, schedulable nodes that are not on their way out: busiest first, so idle ones stay idle."""
    not_usable = set()
    for view in views.values():
        not_usable.update(view.leaving, view.unavailable, view.booting)
    candidates = [
        n for n in index.nodes.values() if n.ready and not n.unschedulable and n.name not in not_usable
    ]
    candidates.sort(key=lambda n: (index.is_idle(n.name), n.name))
    return [Bin.of(n.name, n.group, n.labels, n.taints, index.free(n), "node") for n in candidates]


def _growable(
    views: Mapping[str, GroupView], planned: Mapping[str, int], blocked: Mapping[str, str], limits: _Limits
) -> bool:
    """Could any group still grow this round? The short-circuit of ``_grow``, kept apart for its test."""
    return any(_can_grow(name, view, planned, blocked, limits) for name, view in views.items())


def _can_grow(
    name: str, view: GroupView, planned: Mapping[str, int], blocked: Mapping[str, str], limits: _Limits
) -> bool:
    return name not in blocked and limits.cap(_group_room(view) - planned.get(name, 0)) > 0


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


class _TemplateFit:
    """Could a class ever run on a new node of a group? Labels are checked once per constraint set."""

    def __init__(self, views: Mapping[str, GroupView], cache: FeasibilityCache) -> None:
        self._groups = [view.group for _, view in sorted(views.items())]
        self._labels = {g.name: template_labels(g) for g in self._groups}
        self._cache = cache
        self._fits: dict[int, frozenset[str]] = {}
        self._node_shapes: dict[object, set[Resources]] = {}

    def labels(self, group: str) -> dict[str, str]:
        return self._labels[group]

    def node_shapes(self, cls: PodClass, index: ClusterIndex) -> set[Resources]:
        """The distinct allocatables of existing nodes whose labels and taints admit the class."""
        shapes = self._node_shapes.get(cls.constraints)
        if shapes is None:
            pod = cls.exemplar
            shapes = self._node_shapes[cls.constraints] = {
                n.allocatable for n in index.nodes.values() if label_mismatch(pod, n.labels, n.taints) is None
            }
        return shapes

    def groups(self, cls: PodClass) -> frozenset[str]:
        names = self._fits.get(id(cls.exemplar))
        if names is None:
            names = self._fits[id(cls.exemplar)] = frozenset(
                g.name for g in self._groups if cls.requests.fits_in(g.shape) and self._labels_fit(cls, g)
            )
        return names

    def _labels_fit(self, cls: PodClass, group: NodeGroup) -> bool:
        key = (cls.constraints, ("template", group.name))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = (
                label_mismatch(cls.exemplar, self._labels[group.name], group.taints) is None
            )
        return hit


def _never_fits(
    cls: PodClass, views: Mapping[str, GroupView], index: ClusterIndex, fit: _TemplateFit
) -> str | None:
    """Why no group and no existing node could ever run this class (even empty), or None if one could."""
    if fit.groups(cls) or any(cls.requests.fits_in(a) for a in fit.node_shapes(cls, index)):
        return None
    pod = cls.exemplar
    why = []
    for name, view in sorted(views.items()):
        group = view.group
        reason = shortfall(pod.requests, group.shape) or label_mismatch(pod, fit.labels(name), group.taints)
        why.append(f"{name}: {reason}")
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
