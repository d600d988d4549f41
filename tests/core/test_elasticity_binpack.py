"""First-fit-decreasing over pod equivalence classes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.core.elasticity.binpack import Bin, Packer, pod_classes
from deployer.core.elasticity.model import Resources
from tests.core.builders import make_pod


def _bin(name: str, cpu: int, mem: int = 8192, pods: int = 110, gpu: int = 0, labels=None) -> Bin:
    return Bin.of(name, None, labels or {}, (), Resources(cpu, mem, gpu, pods), "node")


def test_identical_pods_form_one_class_in_fifo_order():
    pods = [make_pod(f"p{i}", cpu=500, created_at=10 - i) for i in range(5)]
    classes = pod_classes(pods)
    assert len(classes) == 1
    assert [p.name for p in classes[0].pods] == ["p4", "p3", "p2", "p1", "p0"]


def test_classes_are_ordered_priority_then_size_decreasing():
    small, big, urgent = (
        make_pod("small", cpu=100),
        make_pod("big", cpu=2000),
        make_pod("urgent", cpu=50, priority=9),
    )
    assert [c.exemplar.name for c in pod_classes([small, big, urgent])] == ["urgent", "big", "small"]


def test_selector_and_tolerations_split_classes():
    plain, picky = make_pod(cpu=100), make_pod(cpu=100, selector={"disk": "ssd"})
    assert len(pod_classes([plain, picky])) == 2


def test_fit_count_uses_the_tightest_resource():
    b = _bin("n", cpu=4000, mem=1024, pods=110)
    assert b.fit_count(Resources(1000, 300, 0, 1)) == 3  # memory bound
    assert _bin("n", cpu=4000, pods=2).fit_count(Resources(0, 0, 0, 1)) == 2  # pod slots bound
    assert _bin("n", cpu=4000).fit_count(Resources(100, 10, 1, 1)) == 0  # no gpu


def test_first_fit_decreasing_fills_earlier_bins_first():
    bins = [_bin("a", 3000), _bin("b", 3000)]
    pods = [make_pod("big", cpu=2000), *(make_pod(f"s{i}", cpu=1000) for i in range(3))]
    packer = Packer()
    left = packer.pack(pod_classes(pods), bins)
    assert left == []
    assert {uid: b.name for uid, b in packer.placements.items()} == {
        "uid-big": "a",
        "uid-s0": "a",
        "uid-s1": "b",
        "uid-s2": "b",
    }
    assert bins[0].cpu_m == 0 and bins[1].cpu_m == 1000


def test_leftovers_are_returned_and_predicates_respected():
    bins = [_bin("amd", 8000, labels={"kubernetes.io/arch": "amd64"})]
    pods = [make_pod(f"arm{i}", cpu=100, selector={"kubernetes.io/arch": "arm64"}) for i in range(2)]
    left = Packer().pack(pod_classes(pods), bins)
    assert [p.name for c in left for p in c.pods] == ["arm0", "arm1"]


def test_open_bins_opens_as_few_template_nodes_as_needed_up_to_the_limit():
    pods = [make_pod(f"p{i}", cpu=1000) for i in range(10)]
    packer = Packer()
    bins, left = packer.open_bins(pod_classes(pods), lambda i: _bin(f"new{i}", 4000), limit=10)
    assert len(bins) == 3 and left == []
    bins, left = Packer().open_bins(pod_classes(pods), lambda i: _bin(f"new{i}", 4000), limit=2)
    assert len(bins) == 2 and sum(len(c.pods) for c in left) == 2


def test_open_bins_refuses_a_pod_larger_than_the_template():
    bins, left = Packer().open_bins(pod_classes([make_pod(cpu=5000)]), lambda i: _bin("x", 4000), limit=5)
    assert bins == [] and len(left) == 1


def _reference_first_fit(pods, bins):
    """The textbook first-fit over a plain list, pod by pod, in the packer's class order."""
    free = {b.name: [b.cpu_m, b.memory_mib, b.pods] for b in bins}
    where = {}
    for cls in pod_classes(pods):
        for pod in cls.pods:
            r = pod.requests
            for b in bins:
                f = free[b.name]
                labels_ok = all(b.labels.get(k) == v for k, v in pod.node_selector.items())
                if labels_ok and r.cpu_m <= f[0] and r.memory_mib <= f[1] and r.pods <= f[2]:
                    f[0] -= r.cpu_m
                    f[1] -= r.memory_mib
                    f[2] -= r.pods
                    where[pod.uid] = b.name
                    break
    return where


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4000), st.integers(0, 4096), st.integers(0, 3), st.booleans()), max_size=40
    ),
    st.lists(st.tuples(st.integers(1, 2000), st.integers(1, 2048), st.booleans()), max_size=60),
)
def test_indexed_first_fit_equals_the_textbook_one(bin_specs, pod_specs):
    def fresh_bins():
        return [
            _bin(f"b{i:02d}", cpu, mem, pods, labels={"disk": "ssd" if ssd else "hdd"})
            for i, (cpu, mem, pods, ssd) in enumerate(bin_specs)
        ]

    pods = [
        make_pod(f"p{i}", cpu=cpu, mem=mem, selector={"disk": "ssd"} if picky else None, created_at=i)
        for i, (cpu, mem, picky) in enumerate(pod_specs)
    ]
    packer = Packer()
    packer.pack(pod_classes(pods), fresh_bins())
    assert {uid: b.name for uid, b in packer.placements.items()} == _reference_first_fit(pods, fresh_bins())
