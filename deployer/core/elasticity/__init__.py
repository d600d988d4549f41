"""The elasticity core: pure decisions about growing and shrinking node groups.

``plan(snapshot, groups, state, settings, now) -> Plan`` is the one entry point; the ``record_*``
transitions let an actuator (daemon or simulator) write what it did; ``groups_from_spec`` and
``settings_from_spec`` turn a cluster spec into the planner's inputs; ``learn`` folds finished pods into
the ``RuntimeModel`` that ``plan()`` may take. No I/O anywhere in this package.
"""

from deployer.core.elasticity.expanders import EXPANDERS
from deployer.core.elasticity.from_spec import groups_from_spec, settings_from_spec
from deployer.core.elasticity.lifecycle import (
    record_draining,
    record_failed,
    record_group_error,
    record_powering_off,
    record_powering_on,
)
from deployer.core.elasticity.model import (
    DisruptionBudget,
    ElasticitySettings,
    ElasticityState,
    GroupKind,
    MarkFailed,
    Node,
    NodeGroup,
    NodePhase,
    NodeRecord,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    OwnerKind,
    Plan,
    Pod,
    Resources,
    ScaleDown,
    ScaleUp,
    Snapshot,
    Taint,
    Toleration,
    Unplaceable,
)
from deployer.core.elasticity.planner import plan
from deployer.core.elasticity.runtimes import RuntimeModel, learn, workload_class

__all__ = [
    "EXPANDERS",
    "DisruptionBudget",
    "ElasticitySettings",
    "ElasticityState",
    "GroupKind",
    "MarkFailed",
    "Node",
    "NodeGroup",
    "NodePhase",
    "NodeRecord",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "OwnerKind",
    "Plan",
    "Pod",
    "Resources",
    "RuntimeModel",
    "ScaleDown",
    "ScaleUp",
    "Snapshot",
    "Taint",
    "Toleration",
    "Unplaceable",
    "groups_from_spec",
    "learn",
    "plan",
    "record_draining",
    "record_failed",
    "record_group_error",
    "record_powering_off",
    "record_powering_on",
    "settings_from_spec",
    "workload_class",
]
