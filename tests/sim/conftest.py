"""Builders shared by the simulator tests: node groups and jobs written inline, no files needed."""

from __future__ import annotations

from deployer.core.elasticity.model import GroupKind, NodeGroup, Resources
from deployer.sim.engine import SimConfig
from deployer.sim.trace import TraceJob

# Exact timings: no boot jitter, so hand-computed answers hold.
EXACT = SimConfig(boot_jitter=0.0, shutdown_seconds=30.0)


def cloud(
    name: str = "wn", min_size: int = 0, max_size: int = 2, cpus: int = 4, cost: float = 1.0, **kw
) -> NodeGroup:
    return NodeGroup(
        name,
        min_size,
        max_size,
        Resources(cpus * 1000, 8192, 0, 110),
        cost_per_hour=cost,
        boot_seconds=180,
        **kw,
    )


def edge(name: str = "pis", hosts: int = 2, min_size: int = 0) -> NodeGroup:
    names = tuple(f"pi-{i}" for i in range(1, hosts + 1))
    return NodeGroup(
        name,
        min_size,
        hosts,
        Resources(4000, 4096, 0, 110),
        kind=GroupKind.EDGE,
        arch="arm64",
        boot_seconds=45,
        hosts=names,
        priority=10,
    )


def job(submit: float, cpu: float, duration: float, memory: int = 512, arch: str | None = None) -> TraceJob:
    return TraceJob(submit, round(cpu * 1000), memory, duration, arch)
