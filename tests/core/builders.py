"""Builders for the elasticity core's values: short, explicit test inputs (``make_pod(cpu=500)``).

Used by tests/core/test_elasticity_*.py and free for the daemon and simulator tests to reuse.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    Node,
    NodeGroup,
    NodePhase,
    NodeRecord,
    OwnerKind,
    Pod,
    Resources,
    Snapshot,
    Taint,
    Toleration,
)
from deployer.core.elasticity.planner import plan
from deployer.core.elasticity.scheduling import template_labels

_serial = itertools.count(1)

# A 4-core, 8 GiB worker and a Raspberry Pi-like board.
CLOUD_SHAPE = Resources(cpu_m=4000, memory_mib=8192, gpu=0, pods=110)
EDGE_SHAPE = Resources(cpu_m=4000, memory_mib=4096, gpu=0, pods=110)


def make_pod(
    name: str | None = None,
    *,
    cpu: int = 500,
    mem: int = 512,
    gpu: int = 0,
    node: str | None = None,
    phase: str | None = None,
    owner: OwnerKind = OwnerKind.REPLICA_SET,
    selector: Mapping[str, str] | None = None,
    tolerations: tuple[Toleration, ...] = (),
    priority: int = 0,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    namespace: str = "default",
    created_at: float = 0.0,
    **extra: object,
) -> Pod:
    """A pod requesting ``cpu`` millicores and ``mem`` MiB; bound and Running when ``node`` is given."""
    name = name or f"pod-{next(_serial)}"
    return Pod(
        uid=f"uid-{name}",
        name=name,
        namespace=namespace,
        requests=Resources(cpu, mem, gpu, 1),
        node_name=node,
        phase=phase or ("Running" if node else "Pending"),
        unschedulable=node is None,
        node_selector=dict(selector or {}),
        tolerations=tolerations,
        owner_kind=owner,
        priority=priority,
        labels=dict(labels or {}),
        annotations=dict(annotations or {}),
        created_at=created_at,
        **extra,  # type: ignore[arg-type]
    )


def make_group(
    name: str = "wn",
    *,
    min_size: int = 0,
    max_size: int = 10,
    shape: Resources = CLOUD_SHAPE,
    kind: GroupKind = GroupKind.CLOUD,
    arch: str = "amd64",
    cost: float = 0.1,
    priority: int = 0,
    hosts: tuple[str, ...] = (),
    labels: Mapping[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
    boot_seconds: float = 180.0,
) -> NodeGroup:
    return NodeGroup(
        name=name,
        min_size=min_size,
        max_size=max_size,
        shape=shape,
        kind=kind,
        arch=arch,
        labels=dict(labels or {}),
        taints=taints,
        cost_per_hour=cost,
        priority=priority,
        hosts=hosts,
        boot_seconds=boot_seconds,
    )


def make_edge_group(name: str = "edge", *, boards: int = 4, **kwargs: object) -> NodeGroup:
    """A Wake-on-LAN edge group of arm64 boards named ``{name}-1`` .. ``{name}-N``."""
    hosts = tuple(f"{name}-{i}" for i in range(1, boards + 1))
    defaults: dict[str, object] = {
        "kind": GroupKind.EDGE,
        "arch": "arm64",
        "cost": 0.0,
        "shape": EDGE_SHAPE,
        "max_size": boards,
        "hosts": hosts,
    }
    defaults.update(kwargs)
    return make_group(name, **defaults)  # type: ignore[arg-type]


def make_node(
    name: str,
    group: NodeGroup | None = None,
    *,
    ready: bool = True,
    cordoned: bool = False,
    allocatable: Resources | None = None,
    labels: Mapping[str, str] | None = None,
    taints: tuple[Taint, ...] | None = None,
    annotations: Mapping[str, str] | None = None,
    created_at: float = 0.0,
) -> Node:
    """A node of ``group`` (its shape, labels and taints), or an unmanaged node when ``group`` is None."""
    base_labels = template_labels(group) if group is not None else {"kubernetes.io/arch": "amd64"}
    base_labels.update(labels or {})
    base_labels["kubernetes.io/hostname"] = name
    return Node(
        name=name,
        group=group.name if group is not None else None,
        allocatable=allocatable or (group.shape if group is not None else CLOUD_SHAPE),
        labels=base_labels,
        taints=taints if taints is not None else (group.taints if group is not None else ()),
        ready=ready,
        unschedulable=cordoned,
        annotations=dict(annotations or {}),
        created_at=created_at,
    )


def make_record(
    name: str,
    group: str,
    phase: NodePhase,
    since: float = 0.0,
    *,
    attempts: int = 0,
    idle_since: float | None = None,
    underutilized_since: float | None = None,
) -> NodeRecord:
    if phase is NodePhase.IDLE and idle_since is None:
        idle_since = since
    return NodeRecord(
        name=name,
        group=group,
        phase=phase,
        since=since,
        attempts=attempts,
        idle_since=idle_since,
        underutilized_since=underutilized_since,
    )


def make_state(*records: NodeRecord, **kwargs: object) -> ElasticityState:
    return ElasticityState(records={r.name: r for r in records}, **kwargs)  # type: ignore[arg-type]


def snapshot(nodes: Sequence[Node] = (), pods: Sequence[Pod] = (), **kw: object) -> Snapshot:
    return Snapshot(nodes=tuple(nodes), pods=tuple(pods), **kw)  # type: ignore[arg-type]


def settings(**overrides: object) -> ElasticitySettings:
    """Settings for tests: no cooldowns and a fixed idle_time unless asked, so each rule is seen alone."""
    values: dict[str, object] = {"scale_down_cooldown": 0.0, "idle_policy": "fixed"}
    values.update(overrides)
    return ElasticitySettings(**values)  # type: ignore[arg-type]


def plan_for(nodes=(), pods=(), groups=(), state=None, *, now: float, **overrides: object):
    """One ``plan()`` round on a snapshot of ``nodes`` and ``pods``; ``overrides`` go to ``settings()``."""
    return plan(snapshot(nodes, pods), groups, state or make_state(), settings(**overrides), now)
