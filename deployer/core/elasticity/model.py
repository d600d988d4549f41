"""The values the elasticity core reasons about: a cluster snapshot, node groups, node records, and the plan.

Everything here is a frozen dataclass so that ``plan()`` can never mutate its inputs. Built by the
Kubernetes adapter (daemon) and by the simulator; read by the planner, the actuator and ``daemon explain``.
Resources are integers (millicores, MiB) so that bin-packing is exact and fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_m: int = 0  # millicores
    memory_mib: int = 0
    gpu: int = 0
    pods: int = 0  # pod slots (a pod request is 1; a node's allocatable is its max pods)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m + other.cpu_m,
            self.memory_mib + other.memory_mib,
            self.gpu + other.gpu,
            self.pods + other.pods,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_m - other.cpu_m,
            self.memory_mib - other.memory_mib,
            self.gpu - other.gpu,
            self.pods - other.pods,
        )

    def fits_in(self, free: Resources) -> bool:
        return (
            self.cpu_m <= free.cpu_m
            and self.memory_mib <= free.memory_mib
            and self.gpu <= free.gpu
            and self.pods <= free.pods
        )


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"  # NoSchedule | PreferNoSchedule | NoExecute


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""  # empty key with operator Exists tolerates everything
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # empty matches every effect


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist | Gt | Lt
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Requirements ANDed together; the terms of a pod's required affinity are ORed."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()


class OwnerKind(str, Enum):
    BARE = "Bare"  # no controller: never evicted (nothing would recreate it)
    JOB = "Job"
    REPLICA_SET = "ReplicaSet"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    MIRROR = "Node"  # static/mirror pod
    OTHER = "Other"


@dataclass(frozen=True, slots=True)
class Pod:
    uid: str
    name: str
    namespace: str = "default"
    requests: Resources = Resources(pods=1)
    node_name: str | None = None  # None while unscheduled
    phase: str = "Pending"  # Pending | Running | Succeeded | Failed
    unschedulable: bool = False  # the scheduler set PodScheduled=False/Unschedulable
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required_affinity: tuple[NodeSelectorTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    owner_kind: OwnerKind = OwnerKind.REPLICA_SET
    priority: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    # When its containers started (status.startTime), None until then: how long a running pod has run.
    started_at: float | None = None
    # When its last container ended (Succeeded/Failed pods), None before: the run times learned.
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    group: str | None  # the node group this node belongs to, None when not managed by us
    allocatable: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    ready: bool = True
    unschedulable: bool = False  # cordoned
    annotations: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget reduced to what the planner needs."""

    namespace: str
    match_labels: Mapping[str, str]
    disruptions_allowed: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the cluster looks like at one instant. ``synced`` is False until informers have listed once."""

    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    budgets: tuple[DisruptionBudget, ...] = ()
    synced: bool = True


class GroupKind(str, Enum):
    CLOUD = "cloud"  # VMs created/destroyed through the IM
    EDGE = "edge"  # owned boards: Wake-on-LAN / SSH shutdown
    EDGE_ALWAYS_ON = "edge-always-on"  # boards that stay on: cordon/uncordon only


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """A set of identical nodes that can grow and shrink (a worker group or an edge group of the spec)."""

    name: str
    min_size: int
    max_size: int
    shape: Resources  # allocatable of one node of this group
    kind: GroupKind = GroupKind.CLOUD
    arch: str = "amd64"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    cost_per_hour: float = 0.0
    priority: int = 0  # higher is preferred by the priority expander
    boot_seconds: float = 180.0  # expected time from power-on to Ready
    shutdown_seconds: float = 30.0  # expected time from power-off request to off (break-even idle policy)
    # Edge groups have a fixed set of boards; cloud groups name new nodes from a pattern.
    hosts: tuple[str, ...] = ()


class NodePhase(str, Enum):
    OFF = "off"
    POWERING_ON = "powering_on"
    IDLE = "idle"
    USED = "used"
    DRAINING = "draining"
    POWERING_OFF = "powering_off"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """Our own memory of a node, persisted by the daemon so that a restart resumes in-flight work."""

    name: str
    group: str
    phase: NodePhase
    since: float  # when it entered ``phase``
    attempts: int = 0  # power-on attempts, for bounded retries
    idle_since: float | None = None
    vm_id: str | None = None  # IM VM id for cloud nodes
    # When the node's requests last fell below the utilisation threshold (underutilised scale-down).
    underutilized_since: float | None = None


@dataclass(frozen=True, slots=True)
class ElasticityState:
    """Everything the planner remembers between rounds. Returned anew by the actuator, never mutated."""

    records: Mapping[str, NodeRecord] = field(default_factory=dict)
    group_backoff_until: Mapping[str, float] = field(default_factory=dict)
    last_scale_up: Mapping[str, float] = field(default_factory=dict)
    last_scale_down: Mapping[str, float] = field(default_factory=dict)
    # Boots that failed in a row, per group (reset by a boot that succeeds): the backoff doubles with each.
    group_failures: Mapping[str, int] = field(default_factory=dict)
    # When each group was last asked to grow (the latest DEMAND_MEMORY rounds, oldest first): the rate
    # at which it needs new nodes, for the "demand" idle policy.
    scale_up_rounds: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ElasticitySettings:
    idle_time: float = 300.0
    # "fixed": an empty node goes after idle_time. "break-even": after min(idle_time, max(idle_floor,
    # boot_seconds + shutdown_seconds of its group)), the ski-rental rule: idling longer than a re-boot
    # costs cannot pay off, and removing at that point spends at most twice the optimal node-time.
    # "demand": break-even, but a node of a group that needs new nodes rarely (``sparse_demand``) goes
    # after idle_floor: keeping it warm costs more node-time than the boots it is expected to save.
    idle_policy: Literal["fixed", "break-even", "demand"] = "demand"
    idle_floor: float = 60.0
    max_booting: int = 0  # 0: no limit
    max_nodes_total: int = 0  # 0: no limit
    scale_up_cooldown: float = 0.0
    scale_down_cooldown: float = 60.0
    provision_timeout: float = 900.0
    # A node still present this long after its power-off was sent gets the power-off again.
    power_off_timeout: float = 300.0
    max_power_on_attempts: int = 3
    failure_backoff: float = 300.0
    min_spare_nodes: int = 0
    scale_down_underutilized: bool = False
    utilization_threshold: float = 0.5
    # Underutilised (non-empty) nodes drained per round; empty nodes are not limited. 0: no limit.
    max_drains_per_round: int = 10
    expanders: tuple[str, ...] = ("edge-first", "priority", "least-cost", "least-waste")
    # Whether a pending pod waits for room that running pods of learned run time (the RuntimeModel given
    # to plan()) free, instead of growing a group; counted from the pod's creation, it waits at most:
    # "boot": the boot time of the fastest group that could grow for it (it starts no later than on a node
    # booted at its arrival); "break-even": that group's boot + idle limit + shutdown, the node-time a new
    # node costs at least when the room frees just after it is ordered; "never": no waiting (model unused).
    wait_for_room: Literal["never", "boot", "break-even"] = "break-even"


@dataclass(frozen=True, slots=True)
class ScaleUp:
    group: str
    count: int
    reason: str
    pod_uids: tuple[str, ...] = ()
    # Edge groups: the boards to wake (or uncordon), chosen by the planner. Empty for cloud groups,
    # whose new nodes are named by the IM.
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScaleDown:
    """Drain then power off these nodes of one group (one IM call per group)."""

    group: str
    nodes: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class MarkFailed:
    node: str
    reason: str
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Unplaceable:
    pod_uid: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    scale_ups: tuple[ScaleUp, ...] = ()
    scale_downs: tuple[ScaleDown, ...] = ()
    failures: tuple[MarkFailed, ...] = ()
    unplaceable: tuple[Unplaceable, ...] = ()
    # Why each pending pod waits ("fits on booting node wn-3", "group cpu at max"): for `daemon explain`.
    explanations: Mapping[str, str] = field(default_factory=dict)
    # Why each scale-down candidate (idle or underutilised long enough) stays: for `daemon explain`.
    kept_nodes: Mapping[str, str] = field(default_factory=dict)
    # The input state advanced by what the snapshot shows (nodes that became Ready, idle stamps, adopted
    # nodes, records of vanished nodes dropped). None only when the snapshot was not synced.
    state: ElasticityState | None = None

    @property
    def empty(self) -> bool:
        return not (self.scale_ups or self.scale_downs or self.failures)
