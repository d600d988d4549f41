"""Scheduling predicates of the elasticity core: each Kubernetes rule on a table of cases."""

from __future__ import annotations

import pytest

from deployer.core.elasticity.model import NodeSelectorRequirement as Req
from deployer.core.elasticity.model import NodeSelectorTerm, Resources, Taint, Toleration
from deployer.core.elasticity.scheduling import (
    affinity_matches,
    label_mismatch,
    requirement_matches,
    shortfall,
    tolerates,
    untolerated,
)
from tests.core.builders import make_pod

GPU = Taint("gpu", "yes", "NoSchedule")


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (Toleration(operator="Exists"), GPU, True),  # empty key + Exists tolerates everything
        (Toleration("gpu", "Exists"), GPU, True),
        (Toleration("gpu", "Equal", "yes"), GPU, True),
        (Toleration("gpu", "Equal", "no"), GPU, False),
        (Toleration("other", "Exists"), GPU, False),
        (Toleration("gpu", "Exists", effect="NoExecute"), GPU, False),
        (Toleration("gpu", "Exists", effect="NoSchedule"), GPU, True),
    ],
)
def test_toleration_matching(toleration, taint, expected):
    assert tolerates(toleration, taint) is expected


def test_prefer_no_schedule_never_blocks():
    soft = Taint("spot", "", "PreferNoSchedule")
    assert untolerated((), (soft,)) is None
    assert untolerated((), (soft, GPU)) == GPU


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        (Req("zone", "In", ("a", "b")), {"zone": "a"}, True),
        (Req("zone", "In", ("a", "b")), {"zone": "c"}, False),
        (Req("zone", "In", ("a",)), {}, False),
        (Req("zone", "NotIn", ("a",)), {"zone": "b"}, True),
        (Req("zone", "NotIn", ("a",)), {}, True),
        (Req("zone", "NotIn", ("a",)), {"zone": "a"}, False),
        (Req("gpu", "Exists"), {"gpu": ""}, True),
        (Req("gpu", "Exists"), {}, False),
        (Req("gpu", "DoesNotExist"), {}, True),
        (Req("gpu", "DoesNotExist"), {"gpu": "1"}, False),
        (Req("cores", "Gt", ("4",)), {"cores": "8"}, True),
        (Req("cores", "Gt", ("4",)), {"cores": "4"}, False),
        (Req("cores", "Lt", ("4",)), {"cores": "2"}, True),
        (Req("cores", "Gt", ("4",)), {"cores": "many"}, False),
        (Req("cores", "Bogus", ("4",)), {"cores": "8"}, False),
    ],
)
def test_node_selector_requirements(requirement, labels, expected):
    assert requirement_matches(requirement, labels) is expected


def test_affinity_terms_are_ored_and_an_empty_term_selects_nothing():
    amd = NodeSelectorTerm((Req("kubernetes.io/arch", "In", ("amd64",)),))
    arm = NodeSelectorTerm((Req("kubernetes.io/arch", "In", ("arm64",)),))
    assert affinity_matches((), {"kubernetes.io/arch": "s390x"})
    assert affinity_matches((amd, arm), {"kubernetes.io/arch": "arm64"})
    assert not affinity_matches((amd,), {"kubernetes.io/arch": "arm64"})
    assert not affinity_matches((NodeSelectorTerm(),), {"kubernetes.io/arch": "amd64"})


@pytest.mark.parametrize(
    ("pod_kwargs", "labels", "taints", "reason_part"),
    [
        ({}, {}, (), None),
        ({"selector": {"kubernetes.io/arch": "arm64"}}, {"kubernetes.io/arch": "amd64"}, (), "arch arm64"),
        ({"selector": {"disk": "ssd"}}, {"disk": "hdd"}, (), "nodeSelector disk=ssd"),
        ({}, {}, (GPU,), "taint gpu=yes:NoSchedule"),
        ({"tolerations": (Toleration("gpu", "Exists"),)}, {}, (GPU,), None),
    ],
)
def test_label_mismatch_explains_the_first_failing_rule(pod_kwargs, labels, taints, reason_part):
    reason = label_mismatch(make_pod(**pod_kwargs), labels, taints)
    if reason_part is None:
        assert reason is None
    else:
        assert reason is not None and reason_part in reason


def test_required_affinity_checked_against_labels():
    term = NodeSelectorTerm((Req("pool", "In", ("batch",)),))
    pod = make_pod(required_affinity=(term,))
    assert label_mismatch(pod, {"pool": "batch"}, ()) is None
    assert label_mismatch(pod, {"pool": "web"}, ()) == "required node affinity not matched"


@pytest.mark.parametrize(
    ("requests", "free", "expected"),
    [
        (Resources(1000, 512, 0, 1), Resources(1000, 512, 0, 1), None),
        (Resources(1001, 512, 0, 1), Resources(1000, 512, 0, 1), "cpu 1001m > 1000m"),
        (Resources(100, 513, 0, 1), Resources(1000, 512, 0, 1), "memory 513Mi > 512Mi"),
        (Resources(100, 10, 1, 1), Resources(1000, 512, 0, 1), "gpu 1 > 0"),
        (Resources(100, 10, 0, 1), Resources(1000, 512, 0, 0), "pods 1 > 0"),
    ],
)
def test_shortfall_names_the_short_resource(requests, free, expected):
    assert shortfall(requests, free) == expected
