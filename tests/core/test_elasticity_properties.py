"""Invariants of ``plan()`` on random clusters (hypothesis).

- never above a group's max, the cluster-wide max or max_booting; never below a group's min;
- never a protected node in a scale-down;
- every placeable pending pod is covered by existing, booting or new capacity (when nothing limits growth),
  unplaceable pods truly fit no group, and each scale-up's nodes can hold the pods it claims;
- deterministic (also under input reordering) and never mutating its inputs.
The checks recompute what they need from the inputs instead of reusing the planner's own helpers.
"""

from __future__ import annotations

import copy
import math
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.core.elasticity import plan
from deployer.core.elasticity.model import (
    DisruptionBudget,
    ElasticitySettings,
    GroupKind,
    NodePhase,
    OwnerKind,
    Resources,
    Snapshot,
)
from deployer.core.elasticity.scheduling import SAFE_TO_EVICT, SCALE_DOWN_DISABLED
from tests.core.builders import make_group, make_node, make_pod, make_record, make_state

NOW = 100_000.0
ARCH = "kubernetes.io/arch"
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw, unlimited: bool = False):
    """(snapshot, groups, state, settings) of a random but consistent cluster."""
    groups, nodes, records, pods = [], [], [], []
    for g in range(draw(st.integers(1, 3))):
        edge = draw(st.booleans())
        min_size = draw(st.integers(0, 2))
        max_size = 50 if unlimited else draw(st.integers(max(min_size, 1), 6))
        name = f"g{g}"
        group = make_group(
            name,
            min_size=min_size,
            max_size=max_size,
            shape=Resources(draw(st.sampled_from([2000, 4000])), draw(st.sampled_from([2048, 8192])), 0, 110),
            kind=GroupKind.EDGE if edge else GroupKind.CLOUD,
            arch=draw(st.sampled_from(["amd64", "arm64"])),
            cost=0.0 if edge else draw(st.sampled_from([0.1, 0.3])),
            priority=draw(st.integers(0, 2)),
            hosts=tuple(f"{name}-{i}" for i in range(max_size)) if edge else (),
            boot_seconds=draw(st.sampled_from([45.0, 180.0])),
        )
        groups.append(group)
        ready = draw(st.integers(0, min(max_size, 4)))
        booting = draw(st.integers(0, min(max_size - ready, 2)))
        for i in range(ready):
            node_name = f"{name}-{i}"
            disabled = draw(st.integers(0, 9)) == 0
            nodes.append(
                make_node(node_name, group, annotations={SCALE_DOWN_DISABLED: "true"} if disabled else None)
            )
            idle_for = draw(st.sampled_from([0.0, 100.0, 400.0]))
            records.append(
                make_record(
                    node_name, name, NodePhase.IDLE, since=NOW - idle_for, underutilized_since=NOW - idle_for
                )
            )
        for i in range(booting):  # edge: the next boards after the ready ones
            booting_name = f"{name}-{ready + i}" if edge else f"{name}-b{i}"
            records.append(make_record(booting_name, name, NodePhase.POWERING_ON, since=NOW - 30))
    for i in range(draw(st.integers(0, 12))):
        if nodes and draw(st.booleans()):
            node = draw(st.sampled_from(nodes))
            owner = draw(st.sampled_from([OwnerKind.REPLICA_SET] * 4 + list(OwnerKind)))
            safe = draw(st.sampled_from([None, None, "true", "false"]))
            pods.append(
                make_pod(
                    f"run{i}",
                    cpu=draw(st.sampled_from([100, 500, 1000])),
                    mem=draw(st.sampled_from([128, 512])),
                    node=node.name,
                    owner=owner,
                    labels={"app": draw(st.sampled_from(["a", "b"]))},
                    annotations={SAFE_TO_EVICT: safe} if safe else None,
                )
            )
    for i in range(draw(st.integers(0, 25))):
        selector = draw(st.sampled_from([None, {ARCH: "amd64"}, {ARCH: "arm64"}, {"disk": "ssd"}]))
        pods.append(
            make_pod(
                f"pend{i}",
                cpu=draw(st.sampled_from([100, 500, 1500, 3000, 9000])),
                mem=draw(st.sampled_from([128, 1024, 4096])),
                selector=selector,
                priority=draw(st.integers(0, 1)),
                created_at=float(i),
            )
        )
    budgets = (DisruptionBudget("default", {"app": "a"}, draw(st.integers(0, 2))),)
    cfg = ElasticitySettings(
        idle_time=300,
        scale_down_cooldown=0,
        min_spare_nodes=draw(st.integers(0, 2)),
        scale_down_underutilized=draw(st.booleans()),
        idle_policy=draw(st.sampled_from(["fixed", "break-even"])),
        max_nodes_total=0 if unlimited else draw(st.sampled_from([0, 3, 8])),
        max_booting=0 if unlimited else draw(st.sampled_from([0, 1, 3])),
    )
    return Snapshot(tuple(nodes), tuple(pods), budgets), tuple(groups), make_state(*records), cfg


def _sizes(snap, groups, state):
    """Per group: nodes that exist or boot (what max counts)."""
    size = {g.name: 0 for g in groups}
    for node in snap.nodes:
        size[node.group] += 1
    for record in state.records.values():
        if record.phase is NodePhase.POWERING_ON:
            size[record.group] += 1
    return size


def _protected(node, snap) -> bool:
    if node.annotations.get(SCALE_DOWN_DISABLED) == "true":
        return True
    budget = {b.match_labels["app"]: b.disruptions_allowed for b in snap.budgets}
    for pod in snap.pods:
        if pod.node_name != node.name or pod.phase in ("Succeeded", "Failed"):
            continue
        if pod.owner_kind in (OwnerKind.DAEMON_SET, OwnerKind.MIRROR):
            continue
        safe = pod.annotations.get(SAFE_TO_EVICT)
        if safe == "false" or (safe != "true" and pod.owner_kind in (OwnerKind.JOB, OwnerKind.BARE)):
            return True
        if budget.get(pod.labels.get("app"), 1) == 0:
            return True
    return False


@PROPERTY_SETTINGS
@given(clusters())
def test_limits_hold_and_protected_nodes_are_never_removed(cluster):
    snap, groups, state, cfg = cluster
    result = plan(snap, groups, state, cfg, NOW)
    size = _sizes(snap, groups, state)
    up = {u.group: u.count for u in result.scale_ups}
    down = {d.group: len(d.nodes) for d in result.scale_downs}
    assert len(up) == len(result.scale_ups) and len(down) == len(result.scale_downs)  # one action per group
    for group in groups:
        assert size[group.name] + up.get(group.name, 0) <= group.max_size
        if down.get(group.name):
            assert size[group.name] - down[group.name] >= group.min_size
            assert group.name not in up
    if cfg.max_nodes_total:
        assert sum(up.values()) <= max(cfg.max_nodes_total - sum(size.values()), 0)
    if cfg.max_booting:
        booting = sum(1 for r in state.records.values() if r.phase is NodePhase.POWERING_ON)
        assert sum(up.values()) <= max(cfg.max_booting - booting, 0)
    nodes = {n.name: n for n in snap.nodes}
    for d in result.scale_downs:
        for name in d.nodes:
            assert not _protected(nodes[name], snap), name
            record = state.records[name]
            assert NOW - (record.idle_since or record.underutilized_since) >= _idle_wait(d.group, groups, cfg)
    for u in result.scale_ups:
        group = next(g for g in groups if g.name == u.group)
        if group.kind is not GroupKind.CLOUD:  # never a board that is on or already booting
            assert len(u.nodes) == u.count and not set(u.nodes) & (set(nodes) | set(state.records))


def _idle_wait(group_name, groups, cfg) -> float:
    """The least time a removed node was idle: idle_time, or break-even's boot + 30 s shutdown (>= 60 s)."""
    group = next(g for g in groups if g.name == group_name)
    if cfg.idle_policy == "fixed":
        return cfg.idle_time
    return min(cfg.idle_time, max(60.0, group.boot_seconds + 30.0))


def _fits_group(pod, group) -> bool:
    r, s = pod.requests, group.shape
    if r.cpu_m > s.cpu_m or r.memory_mib > s.memory_mib:
        return False
    labels = {ARCH: group.arch}
    return all(labels.get(k) == v for k, v in pod.node_selector.items())


@PROPERTY_SETTINGS
@given(clusters(unlimited=True))
def test_every_placeable_pending_pod_is_covered(cluster):
    snap, groups, state, cfg = cluster
    result = plan(snap, groups, state, cfg, NOW)
    pending = {p.uid: p for p in snap.pods if p.node_name is None}
    unplaceable = {u.pod_uid for u in result.unplaceable}
    claimed = {uid for u in result.scale_ups for uid in u.pod_uids}
    assert not unplaceable & claimed
    for uid, pod in pending.items():
        if uid in unplaceable:
            assert not any(_fits_group(pod, g) for g in groups)
            assert not any(pod.requests.fits_in(n.allocatable) for n in snap.nodes if _fits_node(pod, n))
        else:
            why = result.explanations[uid]
            assert uid in claimed or why.startswith(("fits on node", "will run on")), why
    for u in result.scale_ups:
        group = next(g for g in groups if g.name == u.group)
        cpu = sum(pending[uid].requests.cpu_m for uid in u.pod_uids)
        mem = sum(pending[uid].requests.memory_mib for uid in u.pod_uids)
        assert u.count >= math.ceil(max(cpu / group.shape.cpu_m, mem / group.shape.memory_mib) - 1e-9)


def _fits_node(pod, node) -> bool:
    return all(node.labels.get(k) == v for k, v in pod.node_selector.items())


@PROPERTY_SETTINGS
@given(clusters(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_pure(cluster, rnd: random.Random):
    snap, groups, state, cfg = cluster
    before = copy.deepcopy((snap, groups, state, cfg))
    first = plan(snap, groups, state, cfg, NOW)
    assert (snap, groups, state, cfg) == before
    assert plan(snap, groups, state, cfg, NOW) == first
    nodes, pods = list(snap.nodes), list(snap.pods)
    rnd.shuffle(nodes)
    rnd.shuffle(pods)
    shuffled = Snapshot(tuple(nodes), tuple(pods), snap.budgets)
    assert plan(shuffled, groups, state, cfg, NOW) == first
