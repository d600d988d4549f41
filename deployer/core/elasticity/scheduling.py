"""Scheduling predicates: could this pod run on a node with these labels, taints and free resources?

A small, exact subset of the kube-scheduler's filters (resources, nodeSelector, required node affinity,
taints/tolerations; the architecture is just the ``kubernetes.io/arch`` label). Each predicate returns
``None`` when the pod fits, else a short human reason, so the same code decides and explains.
Called by the bin-packer, the scale-up and scale-down planners.
"""

from __future__ import annotations

from collections.abc import Mapping

from deployer.core.elasticity.model import (
    NodeGroup,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    OwnerKind,
    Pod,
    Resources,
    Taint,
    Toleration,
)

ARCH_LABEL = "kubernetes.io/arch"
OS_LABEL = "kubernetes.io/os"
GROUP_LABEL = (
    "deployer.io/group"  # on every node of a group (the kube adapter reads it), so pods may target one
)
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SCALE_DOWN_DISABLED = "cluster-autoscaler.kubernetes.io/scale-down-disabled"

_HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})  # PreferNoSchedule never blocks placement
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
# DaemonSet and mirror pods follow their node: they neither keep it busy nor need placing.
PER_NODE_KINDS = frozenset({OwnerKind.DAEMON_SET, OwnerKind.MIRROR})


def is_finished(pod: Pod) -> bool:
    return pod.phase in FINISHED_PHASES


def is_workload(pod: Pod) -> bool:
    return pod.owner_kind not in PER_NODE_KINDS


def is_pending(pod: Pod) -> bool:
    """Waiting for a node: unbound, not finished, and not a per-node pod."""
    return pod.node_name is None and pod.phase == "Pending" and is_workload(pod)


def hard_taints(taints: tuple[Taint, ...]) -> tuple[Taint, ...]:
    return tuple(t for t in taints if t.effect in _HARD_EFFECTS)


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == taint.key
    return toleration.key == taint.key and toleration.value == taint.value


def untolerated(tolerations: tuple[Toleration, ...], taints: tuple[Taint, ...]) -> Taint | None:
    """The first NoSchedule/NoExecute taint no toleration covers, or None."""
    for taint in taints:
        if taint.effect in _HARD_EFFECTS and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def requirement_matches(requirement: NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    op = requirement.operator
    value = labels.get(requirement.key)
    if op == "In":
        return value is not None and value in requirement.values
    if op == "NotIn":
        return value is None or value not in requirement.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        try:
            have, bound = int(value or ""), int(requirement.values[0])
        except (ValueError, IndexError):
            return False
        return have > bound if op == "Gt" else have < bound
    return False  # an unknown operator never matches, as in the API server's validation


def term_matches(term: NodeSelectorTerm, labels: Mapping[str, str]) -> bool:
    # An empty term selects nothing (Kubernetes semantics), not everything.
    return bool(term.match_expressions) and all(
        requirement_matches(r, labels) for r in term.match_expressions
    )


def affinity_matches(terms: tuple[NodeSelectorTerm, ...], labels: Mapping[str, str]) -> bool:
    return not terms or any(term_matches(t, labels) for t in terms)


def label_mismatch(pod: Pod, labels: Mapping[str, str], taints: tuple[Taint, ...]) -> str | None:
    """Why the pod may never run on a node with these labels and taints (resources aside), or None."""
    for key, wanted in pod.node_selector.items():
        have = labels.get(key)
        if have != wanted:
            if key == ARCH_LABEL:
                return f"arch {wanted} wanted, node is {have}"
            return f"nodeSelector {key}={wanted} not matched"
    if not affinity_matches(pod.required_affinity, labels):
        return "required node affinity not matched"
    taint = untolerated(pod.tolerations, taints)
    if taint is not None:
        return f"taint {taint.key}={taint.value}:{taint.effect} not tolerated"
    return None


def shortfall(requests: Resources, free: Resources) -> str | None:
    """Which resource is short (``cpu 8000m > 4000m``), or None when the requests fit."""
    if requests.cpu_m > free.cpu_m:
        return f"cpu {requests.cpu_m}m > {free.cpu_m}m"
    if requests.memory_mib > free.memory_mib:
        return f"memory {requests.memory_mib}Mi > {free.memory_mib}Mi"
    if requests.gpu > free.gpu:
        return f"gpu {requests.gpu} > {free.gpu}"
    if requests.pods > free.pods:
        return f"pods {requests.pods} > {free.pods}"
    return None


def template_labels(group: NodeGroup) -> dict[str, str]:
    """The labels a new node of the group will carry: the group's own plus the well-known ones."""
    labels = {ARCH_LABEL: group.arch, OS_LABEL: "linux", GROUP_LABEL: group.name}
    labels.update(group.labels)
    return labels
