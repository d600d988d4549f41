"""First-fit-decreasing bin-packing of pods over pod equivalence classes.

Pods with identical scheduling requirements (requests, selector, affinity, tolerations, priority) form one
class, checked against each bin once and placed in runs (``fit_count``), so 10,000 replicas of a few
workloads cost a few hundred predicate checks, not millions. Bins are the simulated free capacity of
existing nodes, of nodes still booting, or of new nodes of a group. Used by the scale-up planner
(existing → booting → new) and by the scale-down planner (can a node's pods move elsewhere?).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from deployer.core.elasticity.model import Pod, Resources, Taint
from deployer.core.elasticity.scheduling import hard_taints, label_mismatch

_UNBOUNDED = 1 << 62


@dataclass(slots=True, eq=False)
class Bin:
    """The simulated free capacity of one node. Mutable, private to one planning round."""

    name: str
    group: str | None
    labels: Mapping[str, str]
    taints: tuple[Taint, ...]  # only the hard ones (NoSchedule, NoExecute)
    cpu_m: int
    memory_mib: int
    gpu: int
    pods: int
    source: str  # "node" (exists and Ready), "booting", or "new"
    signature: object  # bins with equal signatures have equal labels and taints (predicate cache key)
    placed: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        name: str,
        group: str | None,
        labels: Mapping[str, str],
        taints: tuple[Taint, ...],
        free: Resources,
        source: str,
        signature: object = None,
    ) -> Bin:
        return cls(
            name,
            group,
            labels,
            hard_taints(taints),
            free.cpu_m,
            free.memory_mib,
            free.gpu,
            free.pods,
            source,
            name if signature is None else signature,
        )

    def fit_count(self, req: Resources) -> int:
        """How many more pods with these requests fit (no predicates)."""
        count = _UNBOUNDED
        for have, need in (
            (self.cpu_m, req.cpu_m),
            (self.memory_mib, req.memory_mib),
            (self.gpu, req.gpu),
            (self.pods, req.pods),
        ):
            if need > 0:
                count = min(count, have // need) if have > 0 else 0
                if count == 0:
                    return 0
            elif need < 0 or have < 0:
                return 0
        return count

    def take(self, req: Resources, count: int) -> None:
        self.cpu_m -= req.cpu_m * count
        self.memory_mib -= req.memory_mib * count
        self.gpu -= req.gpu * count
        self.pods -= req.pods * count

    @property
    def free(self) -> Resources:
        return Resources(self.cpu_m, self.memory_mib, self.gpu, self.pods)


@dataclass(slots=True)
class PodClass:
    """Pods that the scheduler cannot tell apart: simulated together."""

    exemplar: Pod
    pods: list[Pod]

    @property
    def requests(self) -> Resources:
        return self.exemplar.requests

    def with_pods(self, pods: list[Pod]) -> PodClass:
        return PodClass(self.exemplar, pods)


def class_key(pod: Pod) -> tuple[object, ...]:
    return (
        pod.priority,
        pod.requests,
        tuple(sorted(pod.node_selector.items())),
        pod.required_affinity,
        pod.tolerations,
    )


def pod_classes(pods: Iterable[Pod]) -> list[PodClass]:
    """Group pods into classes in first-fit-decreasing order: priority, then cpu, memory, gpu, then age.

    Within a class pods keep FIFO order (created_at, uid), so the oldest pods get room first.
    """
    by_key: dict[tuple[object, ...], list[Pod]] = {}
    for pod in pods:
        by_key.setdefault(class_key(pod), []).append(pod)
    classes = []
    for members in by_key.values():
        members.sort(key=lambda p: (p.created_at, p.uid))
        classes.append(PodClass(members[0], members))

    def order(c: PodClass) -> tuple[object, ...]:
        r, first = c.requests, c.exemplar
        return (-first.priority, -r.cpu_m, -r.memory_mib, -r.gpu, first.created_at, first.uid)

    classes.sort(key=order)
    return classes


class Packer:
    """First-fit of pod classes onto bins, with predicate results cached per (class, bin signature)."""

    def __init__(self, cache: dict[tuple[int, object], bool] | None = None) -> None:
        self._feasible = {} if cache is None else cache
        self.placements: dict[str, Bin] = {}

    def feasible(self, cls: PodClass, b: Bin) -> bool:
        key = (id(cls.exemplar), b.signature)
        hit = self._feasible.get(key)
        if hit is None:
            hit = label_mismatch(cls.exemplar, b.labels, b.taints) is None
            self._feasible[key] = hit
        return hit

    def pack(self, classes: list[PodClass], bins: list[Bin]) -> list[PodClass]:
        """Place what fits, first bin first; return the classes of the pods left over."""
        left = []
        for cls in classes:
            pods, req = cls.pods, cls.requests
            done = 0
            for b in bins:
                if done >= len(pods):
                    break
                room = b.fit_count(req)
                if room == 0 or not self.feasible(cls, b):
                    continue
                done = self._place(pods, done, min(room, len(pods) - done), b, req)
            if done < len(pods):
                left.append(cls.with_pods(pods[done:]))
        return left

    def open_bins(
        self, classes: list[PodClass], make_bin: Callable[[int], Bin], limit: int
    ) -> tuple[list[Bin], list[PodClass]]:
        """Place the classes on at most ``limit`` new bins from ``make_bin``; return the bins and leftovers.

        The classes must already be feasible on the template (the caller filters them per group).
        """
        bins: list[Bin] = []
        left = []
        for cls in classes:
            pods, req = cls.pods, cls.requests
            done = self._place_on(bins, pods, 0, req)
            while done < len(pods) and len(bins) < limit:
                fresh = make_bin(len(bins))
                room = fresh.fit_count(req)
                if room == 0:
                    break
                bins.append(fresh)
                done = self._place(pods, done, min(room, len(pods) - done), fresh, req)
            if done < len(pods):
                left.append(cls.with_pods(pods[done:]))
        return bins, left

    def _place_on(self, bins: list[Bin], pods: list[Pod], done: int, req: Resources) -> int:
        for b in bins:
            if done >= len(pods):
                break
            room = b.fit_count(req)
            if room:
                done = self._place(pods, done, min(room, len(pods) - done), b, req)
        return done

    def _place(self, pods: list[Pod], start: int, count: int, b: Bin, req: Resources) -> int:
        for pod in pods[start : start + count]:
            self.placements[pod.uid] = b
            b.placed.append(pod.uid)
        b.take(req, count)
        return start + count
