"""The break-even ("ski-rental") and demand idle policies of scale-down, the at-max short-circuit of scale-up.

Break-even removes an empty node after min(idle_time, max(idle_floor, boot_seconds + shutdown_seconds of
its group)) instead of after idle_time; every protection of the fixed policy still holds. Demand removes it
after idle_floor when its group last grew, or grows on average, less often than once per 2 boots +
shutdown. The short-circuit
skips the growth estimate when no group can grow; it must not change any Plan.
"""

from __future__ import annotations

import pytest
from hypothesis import given

import deployer.core.elasticity.scaleup as scaleup
from deployer.core.elasticity import plan, record_powering_on
from deployer.core.elasticity.lifecycle import DEMAND_MEMORY
from deployer.core.elasticity.model import ElasticitySettings, NodePhase, OwnerKind
from deployer.core.elasticity.scheduling import SCALE_DOWN_DISABLED
from tests.core.builders import (
    make_edge_group,
    make_group,
    make_node,
    make_pod,
    make_record,
    make_state,
    settings,
    snapshot,
)
from tests.core.test_elasticity_properties import PROPERTY_SETTINGS, clusters

NOW = 10_000.0


def idle_plan(group, idle_for, policy, *, pods=(), annotations=None, **overrides):
    """One Ready node of ``group``, idle for ``idle_for`` seconds, planned under ``policy``."""
    node = make_node(f"{group.name}-1", group, annotations=annotations)
    record = make_record(node.name, group.name, NodePhase.IDLE, since=NOW - idle_for)
    cfg = settings(idle_time=overrides.pop("idle_time", 300.0), idle_policy=policy, **overrides)
    return plan(snapshot([node], list(pods)), [group], make_state(record), cfg, NOW)


def removed(result):
    return {name for down in result.scale_downs for name in down.nodes}


# (case, group, seconds idle, policy, overrides, removed?)
BOARD = make_edge_group("pi", boards=1, boot_seconds=45)  # limit max(60, 45 + 30) = 75 s
CLOUD = make_group("wn", boot_seconds=180)  # limit 180 + 30 = 210 s
FAST = make_group("fast", boot_seconds=10)  # 10 + 30 = 40 s, raised to the 60 s floor
SLOW = make_group("slow", boot_seconds=600)  # 630 s, capped by idle_time
IDLE_CASES = [
    ("board idle past boot+shutdown goes long before idle_time", BOARD, 76, "break-even", {}, True),
    ("board idle less than boot+shutdown stays", BOARD, 74, "break-even", {}, False),
    ("fixed policy keeps the board for idle_time", BOARD, 299, "fixed", {}, False),
    ("fixed policy removes the board after idle_time", BOARD, 300, "fixed", {}, True),
    ("cloud node idle past 180 s boot + 30 s shutdown goes", CLOUD, 211, "break-even", {}, True),
    ("cloud node idle less than that stays", CLOUD, 209, "break-even", {}, False),
    ("a fast-booting group still waits the floor", FAST, 59, "break-even", {}, False),
    ("a fast-booting group goes after the floor", FAST, 61, "break-even", {}, True),
    ("the floor is a setting", FAST, 41, "break-even", {"idle_floor": 30}, True),
    ("never longer than idle_time for slow-booting groups", SLOW, 301, "break-even", {}, True),
    ("a short idle_time wins over break-even", CLOUD, 121, "break-even", {"idle_time": 120}, True),
]


@pytest.mark.parametrize(
    ("group", "idle_for", "policy", "overrides", "expected"),
    [case[1:] for case in IDLE_CASES],
    ids=[case[0] for case in IDLE_CASES],
)
def test_when_an_idle_node_is_removed(group, idle_for, policy, overrides, expected):
    result = idle_plan(group, idle_for, policy, **overrides)
    assert (f"{group.name}-1" in removed(result)) is expected
    if expected:
        assert f"idle for {idle_for}s" in result.scale_downs[0].reason


def test_demand_is_the_default():
    # It lowers node-hours on every shipped trace at about the same p95 wait (bench/results.md).
    assert ElasticitySettings().idle_policy == "demand"


def _rounds(*ago: float) -> dict[str, tuple[float, ...]]:
    return {"wn": tuple(NOW - a for a in ago)}


# (case, scale-up rounds of the group (seconds ago), seconds idle, removed?)
DEMAND_CASES = [
    ("nothing known: break-even", {}, 209, False),
    ("one recent round: break-even", _rounds(100), 209, False),
    ("quiet for longer than a warm node saves: gone after the floor", _rounds(1000, 950, 900, 500), 61, True),
    ("rounds now and then: gone after the floor", _rounds(7200, 3600, 300), 61, True),
    ("but never before the floor", _rounds(7200, 3600), 59, False),
    ("rounds every minute lately: kept warm until break-even", _rounds(240, 180, 120, 60), 209, False),
    ("dense rounds long ago decay into a sparse rate", _rounds(10_000, 9_940, 9_880, 9_820), 61, True),
]


@pytest.mark.parametrize(
    ("rounds", "idle_for", "expected"), [c[1:] for c in DEMAND_CASES], ids=[c[0] for c in DEMAND_CASES]
)
def test_demand_keeps_a_node_warm_only_while_its_group_needs_nodes_often(rounds, idle_for, expected):
    # A 180 s boot + 30 s shutdown: a demand saves 2 x 180 + 30 = 390 s, so rounds rarer than that go.
    node = make_node("wn-1", CLOUD)
    record = make_record("wn-1", "wn", NodePhase.IDLE, since=NOW - idle_for)
    state = make_state(record, scale_up_rounds=rounds)
    result = plan(snapshot([node], []), [CLOUD], state, settings(idle_policy="demand"), NOW)
    assert ("wn-1" in removed(result)) is expected
    if expected:
        assert "keeping it warm costs more than the boots it saves" in result.scale_downs[0].reason
    # "break-even" ignores the rounds: the same node stays until 210 s.
    assert not removed(plan(snapshot([node], []), [CLOUD], state, settings(idle_policy="break-even"), NOW))


def test_powering_on_remembers_the_latest_rounds_per_group():
    state = make_state()
    for t in range(12):
        state = record_powering_on(state, "wn", [f"wn-{t}"], float(t))
    assert state.scale_up_rounds["wn"] == tuple(float(t) for t in range(12 - DEMAND_MEMORY, 12))


PROTECTED = [
    ("group at min size", make_edge_group("pi", boards=1, boot_seconds=45, min_size=1), {}, ()),
    ("scale-down-disabled annotation", BOARD, {SCALE_DOWN_DISABLED: "true"}, ()),
]


@pytest.mark.parametrize(
    ("group", "annotations", "pods"), [c[1:] for c in PROTECTED], ids=[c[0] for c in PROTECTED]
)
def test_break_even_never_removes_a_protected_node(group, annotations, pods):
    result = idle_plan(group, 10_000, "break-even", annotations=annotations or None, pods=pods)
    assert removed(result) == set()
    assert "pi-1" in result.kept_nodes


def test_a_node_running_a_job_is_never_idle_under_break_even():
    job = make_pod("job", node="pi-1", owner=OwnerKind.JOB)
    result = idle_plan(BOARD, 10_000, "break-even", pods=[job])
    assert removed(result) == set()


def test_underutilised_nodes_still_wait_the_full_idle_time():
    # Moving pods costs a disruption, not a re-boot: break-even only shortens the wait of empty nodes.
    wn = make_group("wn", boot_seconds=45)
    nodes = [make_node("wn-1", wn), make_node("wn-2", wn)]
    pods = [make_pod(node="wn-1", cpu=500), make_pod(node="wn-2", cpu=2000)]

    def run(under_for):
        records = [
            make_record(
                "wn-1", "wn", NodePhase.USED, since=NOW - under_for, underutilized_since=NOW - under_for
            ),
            make_record("wn-2", "wn", NodePhase.USED, since=0.0),
        ]
        cfg = settings(idle_time=300, idle_policy="break-even", scale_down_underutilized=True)
        return plan(snapshot(nodes, pods), [wn], make_state(*records), cfg, NOW)

    assert removed(run(200)) == set()
    assert removed(run(300)) == {"wn-1"}


def test_each_group_waits_its_own_break_even_time():
    # Idle for 100 s: the board is past its 75 s limit and goes; the cloud node (210 s) stays.
    board, cloud = make_edge_group("pi", boards=1, boot_seconds=45), make_group("wn", boot_seconds=180)
    nodes = [make_node("pi-1", board), make_node("wn-1", cloud)]
    records = [make_record(n.name, n.group, NodePhase.IDLE, since=NOW - 100) for n in nodes]
    cfg = settings(idle_time=300, idle_policy="break-even")
    result = plan(snapshot(nodes), [cloud, board], make_state(*records), cfg, NOW)
    assert removed(result) == {"pi-1"}


@PROPERTY_SETTINGS
@given(clusters())
def test_the_at_max_short_circuit_returns_the_same_plan(cluster):
    """The early return of the growth estimate versus running it in full (the slow path)."""
    snap, groups, state, cfg = cluster
    fast = plan(snap, groups, state, cfg, 100_000.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scaleup, "_growable", lambda *_: True)
        slow = plan(snap, groups, state, cfg, 100_000.0)
    assert fast == slow


def test_the_short_circuit_is_taken_on_a_full_cluster_with_a_backlog():
    wn = make_group("wn", max_size=2)
    nodes = [make_node(f"wn-{i}", wn) for i in (1, 2)]
    busy = [make_pod(node=n.name, cpu=4000) for n in nodes]
    backlog = [make_pod(f"wait-{i}", cpu=1000, created_at=float(i)) for i in range(50)]
    records = [make_record(n.name, "wn", NodePhase.USED) for n in nodes]
    answers = []
    real = scaleup._growable

    def recording(*args):
        answers.append(real(*args))
        return answers[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scaleup, "_growable", recording)
        result = plan(snapshot(nodes, busy + backlog), [wn], make_state(*records), settings(), NOW)
    assert answers == [False]
    assert result.scale_ups == ()
    assert all("at max size (2)" in result.explanations[p.uid] for p in backlog)
