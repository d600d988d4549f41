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

# (what is being checked, where) -> feasible; shared by all packers of one planning round.
FeasibilityCache = dict[tuple[object, object], bool]


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


@dataclass(slots=True)
class PodClass:
    """Pods that the scheduler cannot tell apart: simulated together."""

    exemplar: Pod
    pods: list[Pod]
    constraints: Constraints  # what decides feasibility (selector, affinity, tolerations)

    @property
    def requests(self) -> Resources:
        return self.exemplar.requests

    def with_pods(self, pods: list[Pod]) -> PodClass:
        return PodClass(self.exemplar, pods, self.constraints)


class Constraints:
    """A pod's selector, required affinity and tolerations as one dictionary key, hashed once."""

    __slots__ = ("_hash", "key")

    def __init__(self, key: tuple[object, ...]) -> None:
        self.key = key
        self._hash = hash(key)

    @classmethod
    def of(cls, pod: Pod) -> Constraints:
        if not (pod.node_selector or pod.required_affinity or pod.tolerations):
            return _UNCONSTRAINED  # most pods: one shared key, no sorting or hashing per pod of a backlog
        return cls((tuple(sorted(pod.node_selector.items())), pod.required_affinity, pod.tolerations))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Constraints) and self._hash == other._hash and self.key == other.key


_UNCONSTRAINED = Constraints(((), (), ()))


def pod_classes(pods: Iterable[Pod]) -> list[PodClass]:
    """Group pods into classes in first-fit-decreasing order: priority, then cpu, memory, gpu, then age.

    Within a class pods keep FIFO order (created_at, uid), so the oldest pods get room first.
    """
    by_key: dict[tuple[int, Resources, Constraints], list[Pod]] = {}
    for pod in pods:
        by_key.setdefault((pod.priority, pod.requests, Constraints.of(pod)), []).append(pod)
    classes = []
    for key, members in by_key.items():
        members.sort(key=lambda p: (p.created_at, p.uid))
        classes.append(PodClass(members[0], members, key[2]))

    def order(c: PodClass) -> tuple[object, ...]:
        r, first = c.requests, c.exemplar
        return (-first.priority, -r.cpu_m, -r.memory_mib, -r.gpu, first.created_at, first.uid)

    classes.sort(key=order)
    return classes


class _Tree:
    """Per-dimension maxima of free capacity over ranges of bins: the leftmost bin that fits in O(log n).

    Leaves hold a bin's free cpu, memory, gpu and pod slots (-1 for an empty or disabled slot). A subtree
    whose maxima are all large enough may still hold no single fitting bin (the maxima can come from
    different bins), so the search backtracks; it never skips a fitting bin, so the result is exactly
    first-fit.
    """

    __slots__ = ("bins", "cpu", "gpu", "mem", "pods", "size")

    def __init__(self, capacity: int) -> None:
        size = 1
        while size < capacity:
            size *= 2
        self.size = size
        self.cpu = [-1] * (2 * size)
        self.mem = [-1] * (2 * size)
        self.gpu = [-1] * (2 * size)
        self.pods = [-1] * (2 * size)
        self.bins: list[Bin | None] = [None] * size

    def load(self, slots: list[tuple[int, Bin, bool]]) -> None:
        """Fill many leaves at once, then every inner node once: O(n) rather than O(n log n)."""
        for slot, b, enabled in slots:
            self._leaf(slot, b, enabled)
        for i in range(self.size - 1, 0, -1):
            self._pull(i)

    def set(self, slot: int, b: Bin | None, enabled: bool = True) -> None:
        self._leaf(slot, b, enabled)
        cpu, mem, gpu, pods = self.cpu, self.mem, self.gpu, self.pods
        i = (slot + self.size) // 2
        while i:
            left, right = 2 * i, 2 * i + 1
            c = cpu[left] if cpu[left] > cpu[right] else cpu[right]
            m = mem[left] if mem[left] > mem[right] else mem[right]
            g = gpu[left] if gpu[left] > gpu[right] else gpu[right]
            p = pods[left] if pods[left] > pods[right] else pods[right]
            if c == cpu[i] and m == mem[i] and g == gpu[i] and p == pods[i]:
                return  # nothing above changes either
            cpu[i], mem[i], gpu[i], pods[i] = c, m, g, p
            i //= 2

    def _leaf(self, slot: int, b: Bin | None, enabled: bool) -> None:
        self.bins[slot] = b
        i = slot + self.size
        if b is not None and enabled:
            self.cpu[i], self.mem[i], self.gpu[i], self.pods[i] = b.cpu_m, b.memory_mib, b.gpu, b.pods
        else:
            self.cpu[i] = self.mem[i] = self.gpu[i] = self.pods[i] = -1

    def _pull(self, i: int) -> None:
        left, right = 2 * i, 2 * i + 1
        for values in (self.cpu, self.mem, self.gpu, self.pods):
            a, b = values[left], values[right]
            values[i] = a if a > b else b

    def find(self, req: Resources) -> Bin | None:
        c, m, g, p = req.cpu_m, req.memory_mib, req.gpu, req.pods
        cpu, mem, gpu, pods, size = self.cpu, self.mem, self.gpu, self.pods, self.size
        if cpu[1] < c or mem[1] < m or gpu[1] < g or pods[1] < p:
            return None
        backtrack: list[int] = []
        i = 1
        while i < size:
            left = 2 * i
            right = left + 1
            left_ok = cpu[left] >= c and mem[left] >= m and gpu[left] >= g and pods[left] >= p
            right_ok = cpu[right] >= c and mem[right] >= m and gpu[right] >= g and pods[right] >= p
            if left_ok:
                if right_ok:
                    backtrack.append(right)
                i = left
            elif right_ok:
                i = right
            elif backtrack:
                i = backtrack.pop()  # the maxima came from different bins: try the next range
            else:
                return None
        return self.bins[i - size]


class BinIndex:
    """Bins in first-fit order, searchable per feasibility constraint (one tree per constraint set)."""

    def __init__(
        self,
        bins: list[Bin],
        feasible: Callable[[PodClass, Bin], bool],
        capacity: int | None = None,
        uniform: bool = False,
    ) -> None:
        self.bins = list(bins)
        self._feasible = feasible
        self._capacity = max(capacity if capacity is not None else len(self.bins), 1)
        self._uniform = uniform  # every class fits every bin: one shared tree
        self._trees: dict[object, tuple[_Tree, PodClass]] = {}
        self._slot = {id(b): i for i, b in enumerate(self.bins)}
        self._member: list[list[_Tree]] = [[] for _ in self.bins]
        self._disabled: set[int] = set()

    def _tree(self, cls: PodClass) -> _Tree:
        key = None if self._uniform else cls.constraints
        entry = self._trees.get(key)
        if entry is None:
            tree = _Tree(self._capacity)
            slots = []
            for slot, b in enumerate(self.bins):
                if self._uniform or self._feasible(cls, b):
                    slots.append((slot, b, slot not in self._disabled))
                    self._member[slot].append(tree)
            tree.load(slots)
            entry = self._trees[key] = (tree, cls)
        return entry[0]

    def first_fit(self, cls: PodClass) -> Bin | None:
        return self._tree(cls).find(cls.requests)

    def append(self, b: Bin) -> None:
        slot = len(self.bins)
        self.bins.append(b)
        self._slot[id(b)] = slot
        self._member.append([])
        for tree, exemplar in self._trees.values():
            if self._uniform or self._feasible(exemplar, b):
                tree.set(slot, b)
                self._member[slot].append(tree)

    def refresh(self, b: Bin) -> None:
        """After ``b``'s free capacity changed."""
        slot = self._slot[id(b)]
        for tree in self._member[slot]:
            tree.set(slot, b, slot not in self._disabled)

    def disable(self, b: Bin) -> None:
        """Take ``b`` out of every search (its node is leaving); ``enable`` puts it back."""
        self._disabled.add(self._slot[id(b)])
        self.refresh(b)

    def enable(self, b: Bin) -> None:
        self._disabled.discard(self._slot[id(b)])
        self.refresh(b)


class Packer:
    """First-fit of pod classes onto bins, with predicate results cached per (constraints, bin signature)."""

    def __init__(self, cache: FeasibilityCache | None = None) -> None:
        self._cache = {} if cache is None else cache
        self.placements: dict[str, Bin] = {}

    def feasible(self, cls: PodClass, b: Bin) -> bool:
        key = (cls.constraints, b.signature)
        hit = self._cache.get(key)
        if hit is None:
            hit = label_mismatch(cls.exemplar, b.labels, b.taints) is None
            self._cache[key] = hit
        return hit

    def index(self, bins: list[Bin]) -> BinIndex:
        return BinIndex(bins, self.feasible)

    def pack(self, classes: list[PodClass], bins: list[Bin] | BinIndex) -> list[PodClass]:
        """Place what fits, first bin first; return the classes of the pods left over."""
        index = bins if isinstance(bins, BinIndex) else self.index(bins)
        left = []
        for cls in classes:
            done = self._fill(cls, index, 0)
            if done < len(cls.pods):
                left.append(cls.with_pods(cls.pods[done:]))
        return left

    def open_bins(
        self, classes: list[PodClass], make_bin: Callable[[int], Bin], limit: int
    ) -> tuple[list[Bin], list[PodClass]]:
        """Place the classes on at most ``limit`` new bins from ``make_bin``; return the bins and leftovers.

        The classes must already be feasible on the template (the caller filters them per group).
        """
        wanted = sum(len(c.pods) for c in classes)
        index = BinIndex([], self.feasible, capacity=min(limit, wanted), uniform=True)
        left = []
        for cls in classes:
            pods, req = cls.pods, cls.requests
            done = self._fill(cls, index, 0)
            while done < len(pods) and len(index.bins) < limit:
                fresh = make_bin(len(index.bins))
                room = fresh.fit_count(req)
                if room == 0:
                    break
                index.append(fresh)
                done = self._place(pods, done, min(room, len(pods) - done), fresh, req)
                index.refresh(fresh)
            if done < len(pods):
                left.append(cls.with_pods(pods[done:]))
        return index.bins, left

    def _fill(self, cls: PodClass, index: BinIndex, done: int) -> int:
        pods, req = cls.pods, cls.requests
        while done < len(pods):
            b = index.first_fit(cls)
            room = b.fit_count(req) if b is not None else 0
            if b is None or room == 0:  # room == 0 only for malformed (negative) requests
                break
            done = self._place(pods, done, min(room, len(pods) - done), b, req)
            index.refresh(b)
        return done

    def _place(self, pods: list[Pod], start: int, count: int, b: Bin, req: Resources) -> int:
        for pod in pods[start : start + count]:
            self.placements[pod.uid] = b
            b.placed.append(pod.uid)
        b.take(req, count)
        return start + count
