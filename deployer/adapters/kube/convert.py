"""Convert Kubernetes API objects (the official client's models) into the elasticity core's frozen values.

Called by the watch cache (``informer.Reflector``) for every object it receives, so that ``snapshot()``
only has to gather already-converted values. Quantities are parsed exactly with ``Decimal``: requests
round UP to whole millicores/MiB and node allocatable rounds DOWN, so rounding never makes a pod look
like it fits where it does not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from deployer.core.elasticity.model import (
    DisruptionBudget,
    Node,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    OwnerKind,
    Pod,
    Resources,
    Taint,
    Toleration,
)
from deployer.core.elasticity.scheduling import FINISHED_PHASES, GROUP_LABEL

DEFAULT_GROUP_LABEL = GROUP_LABEL
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915")

_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# The resource.Quantity grammar: a signed decimal number, then a binary suffix, a decimal suffix or an
# exponent (``1e9``, ``1E3``).
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)$")
_OWNER_KINDS = {kind.value: kind for kind in OwnerKind if kind is not OwnerKind.OTHER}
_MIB = Decimal(2**20)


def parse_quantity(text: str | int | float) -> Decimal:
    """The exact value of a Kubernetes quantity (``"250m"``, ``"2"``, ``"512Mi"``, ``"1e9"``)."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, suffix = Decimal(match.group(1)), match.group(2)
    if suffix in _BINARY_SUFFIXES:
        return number * _BINARY_SUFFIXES[suffix]
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _DECIMAL_SUFFIXES[suffix]


def _round(value: Decimal, round_up: bool) -> int:
    return math.ceil(value) if round_up else math.floor(value)


def cpu_millicores(quantity: str | int | float, *, round_up: bool = True) -> int:
    """CPU in millicores: ``"250m"`` is 250, ``"2"`` is 2000, ``"0.1"`` is 100."""
    return _round(parse_quantity(quantity) * 1000, round_up)


def memory_mib(quantity: str | int | float, *, round_up: bool = True) -> int:
    """Memory in MiB: ``"512Mi"`` is 512, ``"1Gi"`` is 1024, ``"1e9"`` (bytes) is 954 rounded up."""
    return _round(parse_quantity(quantity) / _MIB, round_up)


def resources_from_map(quantities: Mapping[str, Any] | None, *, round_up: bool, pods: int) -> Resources:
    """cpu/memory/GPU of a requests or allocatable map; ``pods`` is the pod-slot count to carry."""
    quantities = quantities or {}
    gpu = sum(
        _round(parse_quantity(quantities[name]), round_up) for name in GPU_RESOURCES if name in quantities
    )
    return Resources(
        cpu_m=cpu_millicores(quantities["cpu"], round_up=round_up) if "cpu" in quantities else 0,
        memory_mib=memory_mib(quantities["memory"], round_up=round_up) if "memory" in quantities else 0,
        gpu=gpu,
        pods=pods,
    )


def _max(a: Resources, b: Resources) -> Resources:
    return Resources(
        max(a.cpu_m, b.cpu_m), max(a.memory_mib, b.memory_mib), max(a.gpu, b.gpu), max(a.pods, b.pods)
    )


def pod_requests(spec: Any) -> Resources:
    """The scheduler's view of a pod's request: max(sum of containers, largest init container) + overhead."""
    total = Resources(pods=1)
    for container in spec.containers or ():
        total = total + resources_from_map(_requests_of(container), round_up=True, pods=0)
    for container in spec.init_containers or ():
        total = _max(total, resources_from_map(_requests_of(container), round_up=True, pods=1))
    if spec.overhead:
        total = total + resources_from_map(spec.overhead, round_up=True, pods=0)
    return total


def _requests_of(container: Any) -> Mapping[str, Any] | None:
    resources = container.resources
    if resources is None:
        return None
    # The API server defaults requests to limits when only limits are set; do the same for raw objects.
    return resources.requests or resources.limits


def owner_kind(metadata: Any) -> OwnerKind:
    """Who recreates this pod if it is evicted: a controller kind, a mirror (static) pod, or nobody."""
    if MIRROR_ANNOTATION in (metadata.annotations or {}):
        return OwnerKind.MIRROR
    controllers = [ref for ref in metadata.owner_references or () if ref.controller]
    if not controllers:
        return OwnerKind.BARE
    return _OWNER_KINDS.get(controllers[0].kind, OwnerKind.OTHER)


def _timestamp(value: Any) -> float:
    return value.timestamp() if value is not None else 0.0


# kube-scheduler's VolumeBinding message for a pod whose claims are not bound yet: a new node cannot help.
UNBOUND_CLAIMS = "unbound immediate PersistentVolumeClaims"


def is_unschedulable(status: Any) -> bool:
    """True when the scheduler found no node with room for the pod (PodScheduled=False, reason
    Unschedulable): the demand an autoscaler serves. A scheduling-gated pod (reason SchedulingGated) was
    never tried, and one waiting for its PersistentVolumeClaims to bind would not fit on a new node either."""
    return any(
        cond.type == "PodScheduled"
        and cond.status == "False"
        and cond.reason == "Unschedulable"
        and UNBOUND_CLAIMS not in (cond.message or "")
        for cond in (status.conditions if status else None) or ()
    )


def _required_affinity(spec: Any) -> tuple[NodeSelectorTerm, ...]:
    node_affinity = spec.affinity.node_affinity if spec.affinity else None
    required = node_affinity.required_during_scheduling_ignored_during_execution if node_affinity else None
    if required is None:
        return ()
    terms = []
    for term in required.node_selector_terms or ():
        expressions = [
            NodeSelectorRequirement(expr.key, expr.operator, tuple(expr.values or ()))
            for expr in term.match_expressions or ()
        ]
        # matchFields only supports metadata.name; keep it as a requirement on that pseudo-label key.
        expressions += [
            NodeSelectorRequirement(field.key, field.operator, tuple(field.values or ()))
            for field in term.match_fields or ()
        ]
        terms.append(NodeSelectorTerm(tuple(expressions)))
    return tuple(terms)


def pod_from_api(pod: Any) -> Pod:
    """A ``V1Pod`` as the core's ``Pod``."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    return Pod(
        uid=meta.uid or f"{meta.namespace}/{meta.name}",
        name=meta.name,
        namespace=meta.namespace or "default",
        requests=pod_requests(spec),
        node_name=spec.node_name or None,
        phase=(status.phase if status else None) or "Pending",
        unschedulable=is_unschedulable(status),
        node_selector=dict(spec.node_selector or {}),
        required_affinity=_required_affinity(spec),
        tolerations=tuple(
            Toleration(
                key=tol.key or "",
                operator=tol.operator or "Equal",
                value=tol.value or "",
                effect=tol.effect or "",
            )
            for tol in spec.tolerations or ()
        ),
        owner_kind=owner_kind(meta),
        priority=spec.priority or 0,
        labels=dict(meta.labels or {}),
        annotations=dict(meta.annotations or {}),
        created_at=_timestamp(meta.creation_timestamp),
        started_at=status.start_time.timestamp() if status is not None and status.start_time else None,
        finished_at=finished_at(status),
    )


def finished_at(status: Any) -> float | None:
    """When the last container of a finished pod ended (its containers' ``terminated.finishedAt``)."""
    if status is None or status.phase not in FINISHED_PHASES:
        return None
    ends = [
        c.state.terminated.finished_at.timestamp()
        for c in status.container_statuses or ()
        if c.state and c.state.terminated and c.state.terminated.finished_at
    ]
    return max(ends) if ends else None


def node_from_api(node: Any, group_label: str = DEFAULT_GROUP_LABEL) -> Node:
    """A ``V1Node`` as the core's ``Node``; its group is the value of ``group_label`` (None if absent)."""
    meta, spec, status = node.metadata, node.spec, node.status
    labels = dict(meta.labels or {})
    allocatable = (status.allocatable or status.capacity) if status else None
    pods = int(parse_quantity(allocatable["pods"])) if allocatable and "pods" in allocatable else 110
    return Node(
        name=meta.name,
        group=labels.get(group_label),
        allocatable=resources_from_map(allocatable, round_up=False, pods=pods),
        labels=labels,
        taints=tuple(
            Taint(key=taint.key, value=taint.value or "", effect=taint.effect)
            for taint in (spec.taints if spec else None) or ()
        ),
        ready=any(
            cond.type == "Ready" and cond.status == "True"
            for cond in (status.conditions if status else None) or ()
        ),
        unschedulable=bool(spec.unschedulable) if spec else False,
        annotations=dict(meta.annotations or {}),
        created_at=_timestamp(meta.creation_timestamp),
    )


def budget_from_api(pdb: Any) -> DisruptionBudget:
    """A ``V1PodDisruptionBudget`` as the core's ``DisruptionBudget``.

    The core matches on matchLabels only, so a selector's matchExpressions are dropped: the budget then
    covers MORE pods (an empty selector covers the whole namespace, as in policy/v1), which errs on the
    side of not disrupting.
    """
    selector = pdb.spec.selector if pdb.spec else None
    return DisruptionBudget(
        namespace=pdb.metadata.namespace or "default",
        match_labels=dict((selector.match_labels if selector else None) or {}),
        disruptions_allowed=(pdb.status.disruptions_allowed if pdb.status else None) or 0,
    )
