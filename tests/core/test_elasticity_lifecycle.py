"""The node life cycle: what ``plan()`` observes, its timeouts and backoff, and the actuator's transitions."""

from __future__ import annotations

import functools

from deployer.core.elasticity import (
    MarkFailed,
    ScaleUp,
    plan,
    record_draining,
    record_failed,
    record_group_error,
    record_powering_off,
    record_powering_on,
)
from deployer.core.elasticity.model import GroupKind, NodePhase
from tests.core.builders import (
    make_edge_group,
    make_group,
    make_node,
    make_pod,
    make_record,
    make_state,
    plan_for,
    settings,
    snapshot,
)

NOW = 5_000.0


run = functools.partial(plan_for, now=NOW)


def test_a_booted_node_becomes_idle_or_used_and_its_attempts_reset():
    wn = make_group("wn")
    booting = make_state(
        make_record("wn-1", "wn", NodePhase.POWERING_ON, since=NOW - 100, attempts=2),
        make_record("wn-2", "wn", NodePhase.POWERING_ON, since=NOW - 100),
    )
    nodes = [make_node("wn-1", wn), make_node("wn-2", wn)]
    records = run(nodes, [make_pod(node="wn-2")], [wn], booting).state.records
    assert (records["wn-1"].phase, records["wn-1"].idle_since, records["wn-1"].attempts) == (
        NodePhase.IDLE,
        NOW,
        0,
    )
    assert (records["wn-2"].phase, records["wn-2"].idle_since) == (NodePhase.USED, None)


def test_idle_since_is_kept_while_idle_and_cleared_when_used():
    wn = make_group("wn")
    state = make_state(make_record("wn-1", "wn", NodePhase.IDLE, since=100))
    node = make_node("wn-1", wn)
    assert run([node], [], [wn], state).state.records["wn-1"].idle_since == 100
    used = run([node], [make_pod(node="wn-1")], [wn], state).state.records["wn-1"]
    assert (used.phase, used.idle_since, used.since) == (NodePhase.USED, None, NOW)
    again = run([node], [], [wn], run([node], [make_pod(node="wn-1")], [wn], state).state, now=NOW + 50)
    assert again.state.records["wn-1"].idle_since == NOW + 50


def test_provision_timeout_marks_failed_and_the_next_group_takes_the_pods():
    first, second = make_group("first", priority=5), make_group("second")
    state = make_state(make_record("first-1", "first", NodePhase.POWERING_ON, since=NOW - 901))
    result = run(pods=[make_pod(cpu=1000)], groups=[first, second], state=state, provision_timeout=900)
    assert [(f.node, f.group) for f in result.failures] == [("first-1", "first")]
    assert "timeout 900s" in result.failures[0].reason
    assert [u.group for u in result.scale_ups] == ["second"]


def test_a_failed_record_backs_the_cloud_group_off_then_is_forgotten():
    wn = make_group("wn")
    failed = make_state(make_record("wn-1", "wn", NodePhase.FAILED, since=NOW - 100))
    blocked = run(pods=[make_pod(cpu=1000)], groups=[wn], state=failed, failure_backoff=300)
    assert blocked.scale_ups == () and "wn-1" in blocked.state.records
    later = run(pods=[make_pod(cpu=1000)], groups=[wn], state=failed, now=NOW + 300, failure_backoff=300)
    assert [u.group for u in later.scale_ups] == ["wn"] and "wn-1" not in later.state.records


def test_the_group_backoff_doubles_with_failures_in_a_row_and_resets_after_a_good_boot():
    wn = make_group("wn")
    cfg = settings(failure_backoff=100)
    state = make_state()
    for i in range(3):  # three boots that timed out, one after the other
        state = record_failed(state, MarkFailed(f"wn-{i}", "timeout", "wn"), NOW)
    assert state.group_failures == {"wn": 3}
    pods = [make_pod(cpu=1000)]
    assert plan(snapshot((), pods), [wn], state, cfg, NOW + 399).scale_ups == ()  # 100 * 2**2 = 400
    assert plan(snapshot((), pods), [wn], state, cfg, NOW + 400).scale_ups != ()
    booting = record_powering_on(state, "wn", ["wn-9"], NOW + 400)
    healthy = plan(snapshot([make_node("wn-9", wn)], pods), [wn], booting, cfg, NOW + 500).state
    assert healthy.group_failures == {}


def test_an_old_not_ready_node_without_record_is_marked_failed():
    wn = make_group("wn")
    stuck = make_node("wn-7", wn, ready=False, created_at=NOW - 2000)
    result = run([stuck], [], [wn], provision_timeout=900)
    assert [f.node for f in result.failures] == ["wn-7"]


def test_a_vanished_cloud_node_is_forgotten_and_a_dark_board_is_off():
    wn, pi = make_group("wn"), make_edge_group("pi", boards=1)
    state = make_state(
        make_record("wn-1", "wn", NodePhase.POWERING_OFF, since=NOW - 10),
        make_record("pi-1", "pi", NodePhase.POWERING_OFF, since=NOW - 10),
    )
    dark = make_node("pi-1", pi, ready=False)
    records = run([dark], [], [wn, pi], state).state.records
    assert "wn-1" not in records
    assert records["pi-1"].phase is NodePhase.OFF


def test_a_failed_board_is_retried_after_backoff_until_attempts_run_out():
    pi = make_edge_group("pi", boards=1)
    pods = [make_pod(cpu=1000)]
    failed_once = make_state(make_record("pi-1", "pi", NodePhase.FAILED, since=NOW - 10, attempts=1))
    assert run(pods=pods, groups=[pi], state=failed_once, failure_backoff=60).scale_ups == ()
    retry = run(pods=pods, groups=[pi], state=failed_once, now=NOW + 60, failure_backoff=60)
    assert [u.nodes for u in retry.scale_ups] == [("pi-1",)]
    exhausted = make_state(make_record("pi-1", "pi", NodePhase.FAILED, since=0, attempts=3))
    assert run(pods=pods, groups=[pi], state=exhausted, max_power_on_attempts=3).scale_ups == ()


def test_records_of_unknown_groups_and_other_nodes_are_kept_untouched():
    wn = make_group("wn")
    orphan = make_record("old-1", "removed-group", NodePhase.USED, since=1)
    assert run(groups=[wn], state=make_state(orphan)).state.records["old-1"] == orphan


# --- transitions the actuator writes -------------------------------------------------------------------


def test_record_powering_on_counts_attempts_and_stamps_the_group():
    state = make_state(make_record("pi-1", "pi", NodePhase.FAILED, since=0, attempts=1))
    up = ScaleUp("pi", 2, "burst", nodes=("pi-1", "pi-2"))
    new = record_powering_on(state, up.group, up.nodes, NOW, vm_ids={"pi-2": "vm-2"})
    assert {n: (r.phase, r.attempts, r.vm_id) for n, r in new.records.items()} == {
        "pi-1": (NodePhase.POWERING_ON, 2, None),
        "pi-2": (NodePhase.POWERING_ON, 1, "vm-2"),
    }
    assert new.last_scale_up == {"pi": NOW}
    assert state.records["pi-1"].phase is NodePhase.FAILED  # the input is untouched


def test_drain_power_off_failure_and_group_error_transitions():
    state = make_state(make_record("wn-1", "wn", NodePhase.IDLE, since=0))
    draining = record_draining(state, "wn", ["wn-1"], NOW)
    assert draining.records["wn-1"].phase is NodePhase.DRAINING
    off = record_powering_off(draining, "wn", ["wn-1"], NOW + 5)
    assert (off.records["wn-1"].phase, off.records["wn-1"].since) == (NodePhase.POWERING_OFF, NOW + 5)
    assert off.last_scale_down == {"wn": NOW + 5}
    failed = record_failed(state, MarkFailed("wn-1", "timeout", "wn"), NOW)
    assert failed.records["wn-1"].phase is NodePhase.FAILED
    backoff = record_group_error(state, "wn", NOW, settings(failure_backoff=120))
    assert backoff.group_backoff_until == {"wn": NOW + 120}


def test_full_cycle_on_a_virtual_clock():
    """Pending pod → scale-up → boot → used → idle → scale-down → gone, with the actuator's records."""
    wn = make_group("wn")
    cfg = dict(idle_time=60)
    pod = make_pod("job", cpu=1000)
    first = run(pods=[pod], groups=[wn], now=0, **cfg)
    assert [(u.group, u.count) for u in first.scale_ups] == [("wn", 1)]
    state = record_powering_on(first.state, "wn", ["wn-1"], 0)
    waiting = run(pods=[pod], groups=[wn], state=state, now=30, **cfg)
    assert waiting.scale_ups == () and "booting" in waiting.explanations[pod.uid]
    node = make_node("wn-1", wn)
    running = run([node], [make_pod("job", cpu=1000, node="wn-1")], [wn], waiting.state, now=120, **cfg)
    assert running.state.records["wn-1"].phase is NodePhase.USED
    idle = run([node], [], [wn], running.state, now=200, **cfg)
    assert idle.scale_downs == ()
    due = run([node], [], [wn], idle.state, now=260, **cfg)
    assert [d.nodes for d in due.scale_downs] == [("wn-1",)]
    state = record_powering_off(record_draining(due.state, "wn", ["wn-1"], 260), "wn", ["wn-1"], 261)
    gone = run([], [], [wn], state, now=300, **cfg)
    assert gone.empty and gone.state.records == {}


def test_always_on_board_cordoned_after_power_off_is_off():
    pi = make_edge_group("pi", boards=1, kind=GroupKind.EDGE_ALWAYS_ON)
    state = make_state(make_record("pi-1", "pi", NodePhase.POWERING_OFF, since=NOW))
    cordoned = make_node("pi-1", pi, cordoned=True)
    assert run([cordoned], [], [pi], state).state.records["pi-1"].phase is NodePhase.OFF
