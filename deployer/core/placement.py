"""Where a cluster's pieces go: hybrid/multi-cloud reachability checks and flavor choice.

Pure: values in, values out (no network, no profiles file). Called by ``deployer clouds check`` and the
create flow (``hybrid_findings`` before anything is submitted) and by discovery (``choose_flavor`` on the
flavors a cloud lists).

Why the checks: worker VMs on another cloud than the front end join Kubernetes by dialling the front
end's API server (and the elasticity daemon reaches them back through it). That only works when the
front end has an address they can reach: a public IP, or a VPN/overlay network that spans the clouds
(documented in docs/clouds.md). Edge boards join the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from deployer.core.spec import ClusterSpec

HYBRID_DOC = "docs/clouds.md#mixed-clusters"


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "warning"]
    message: str


def hybrid_findings(spec: ClusterSpec, kinds: Mapping[str, str]) -> list[Finding]:
    """Problems of a spec's placement. ``kinds`` maps each cloud name of the spec to its profile kind."""
    findings: list[Finding] = []
    front_cloud = spec.cloud
    remote = [g for g in spec.worker_groups if spec.group_cloud(g) != front_cloud]
    simulated = {name for name in spec.clouds() if kinds.get(name) == "local"}
    if simulated and len(simulated) != len(spec.clouds()):
        real = sorted(set(spec.clouds()) - simulated)
        findings.append(
            Finding(
                "error",
                f"clouds {', '.join(sorted(simulated))} are simulated (kind local) and cannot share a "
                f"cluster with real clouds ({', '.join(real)}); use real clouds only or local only",
            )
        )
    if remote and not spec.front.public_ip:
        names = ", ".join(f"{g.name} ({spec.group_cloud(g)})" for g in remote)
        findings.append(
            Finding(
                "warning",
                f"worker groups {names} run on another cloud than the front end ({front_cloud}), which has "
                f"no public IP: they cannot join unless a VPN/overlay spans the clouds (see {HYBRID_DOC}); "
                "otherwise set front.public_ip: true",
            )
        )
    if spec.edge_groups and not spec.front.public_ip:
        findings.append(
            Finding(
                "warning",
                "edge groups join through the front end, which has no public IP: the boards need a route to "
                f"its private address (VPN/overlay, see {HYBRID_DOC})",
            )
        )
    return findings


@dataclass(frozen=True)
class Flavor:
    """A VM size a cloud offers. ``cost`` is per hour when the cloud publishes one, else None."""

    name: str
    vcpus: int
    ram_mib: int
    disk_gib: int = 0
    gpus: int = 0
    cost: float | None = None
    id: str = ""


@dataclass(frozen=True)
class FlavorChoice:
    flavor: Flavor | None
    reasons: tuple[str, ...]  # one line per flavor considered, the choice last (for --verbose)


def _shortfalls(flavor: Flavor, cpus: int, memory_mib: int, gpus: int, disk_gib: int) -> list[str]:
    missing = []
    if flavor.vcpus < cpus:
        missing.append(f"{flavor.vcpus} vCPU < {cpus}")
    if flavor.ram_mib < memory_mib:
        missing.append(f"{flavor.ram_mib} MiB < {memory_mib} MiB")
    if flavor.gpus < gpus:
        missing.append(f"{flavor.gpus} GPU < {gpus}")
    if disk_gib and flavor.disk_gib and flavor.disk_gib < disk_gib:
        missing.append(f"{flavor.disk_gib} GiB disk < {disk_gib} GiB")
    return missing


def _rank(flavor: Flavor) -> tuple[float, int, int, int, int, str]:
    # Known prices decide; without them the smallest size is the cheapest proxy, GPUs weighing most
    # (a GPU flavor costs far more than any number of extra vCPUs).
    price = flavor.cost if flavor.cost is not None else float("inf")
    return (price, flavor.gpus, flavor.vcpus, flavor.ram_mib, flavor.disk_gib, flavor.name)


def choose_flavor(
    flavors: Iterable[Flavor], *, cpus: int, memory_mib: int, gpus: int = 0, disk_gib: int = 0
) -> FlavorChoice:
    """The cheapest flavor meeting the requirements, with the reasoning. Disk counts only when known."""
    reasons: list[str] = []
    fitting: list[Flavor] = []
    for flavor in sorted(flavors, key=_rank):
        missing = _shortfalls(flavor, cpus, memory_mib, gpus, disk_gib)
        if missing:
            reasons.append(f"{flavor.name}: too small ({', '.join(missing)})")
        else:
            fitting.append(flavor)
    want = f"{cpus} vCPU, {memory_mib} MiB" + (f", {gpus} GPU" if gpus else "")
    if not fitting:
        reasons.append(f"no flavor offers {want}")
        return FlavorChoice(None, tuple(reasons))
    best = fitting[0]
    for other in fitting[1:]:
        reasons.append(f"{other.name}: fits but costs more than {best.name}")
    basis = (
        f"{best.cost}/h, the lowest price"
        if best.cost is not None
        else "the smallest that fits (no prices known)"
    )
    reasons.append(
        f"chose {best.name} ({best.vcpus} vCPU, {best.ram_mib} MiB, {best.gpus} GPU) for {want}: {basis}"
    )
    return FlavorChoice(best, tuple(reasons))
