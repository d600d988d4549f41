"""Exact quantity parsing and the conversion of real client objects into the core's frozen values."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from kubernetes import client

from deployer.adapters.kube.convert import (
    budget_from_api,
    cpu_millicores,
    memory_mib,
    node_from_api,
    parse_quantity,
    pod_from_api,
)
from deployer.core.elasticity.model import (
    NodeSelectorRequirement,
    NodeSelectorTerm,
    OwnerKind,
    Resources,
    Taint,
    Toleration,
)


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [
        ("250m", 250),
        ("2", 2000),
        ("0.5", 500),
        ("1.25", 1250),
        ("100u", 1),
        ("1500000n", 2),
        ("1e3", 1_000_000),
    ],
)
def test_cpu_quantities(quantity, millicores):
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(
    ("quantity", "up", "down"),
    [
        ("512Mi", 512, 512),
        ("1Gi", 1024, 1024),
        ("1.5Gi", 1536, 1536),
        ("2048Ki", 2, 2),
        ("1e9", 954, 953),  # 953.67 MiB
        ("1G", 954, 953),
        ("128974848", 123, 123),  # exactly 123 MiB in bytes
        ("129e6", 124, 123),
        ("1Ki", 1, 0),
    ],
)
def test_memory_quantities_round_conservatively(quantity, up, down):
    assert memory_mib(quantity) == up
    assert memory_mib(quantity, round_up=False) == down


def test_quantity_parsing_is_exact_and_strict():
    assert parse_quantity("0.1") * 3 == parse_quantity("300m")  # no binary floating point drift
    assert parse_quantity("1E3") == 1000
    for bad in ("", "abc", "1.2.3", "5 Mi", "1Zi", "m"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


def owner(kind: str) -> list[client.V1OwnerReference]:
    return [client.V1OwnerReference(api_version="v1", kind=kind, name="o", uid="u", controller=True)]


def make_pod(**spec_fields) -> client.V1Pod:
    meta = spec_fields.pop("metadata", client.V1ObjectMeta(name="p", namespace="ns", uid="uid-1"))
    status = spec_fields.pop("status", client.V1PodStatus(phase="Pending"))
    spec_fields.setdefault("containers", [client.V1Container(name="c")])
    return client.V1Pod(metadata=meta, spec=client.V1PodSpec(**spec_fields), status=status)


def container(cpu: str, memory: str, **extra: str) -> client.V1Container:
    return client.V1Container(
        name="c", resources=client.V1ResourceRequirements(requests={"cpu": cpu, "memory": memory, **extra})
    )


def test_pod_requests_sum_containers_and_respect_init_containers_and_overhead():
    pod = make_pod(
        containers=[container("250m", "256Mi"), container("500m", "1Gi", **{"nvidia.com/gpu": "1"})],
        init_containers=[container("2", "64Mi")],
        overhead={"cpu": "10m", "memory": "1Mi"},
    )
    assert pod_from_api(pod).requests == Resources(cpu_m=2010, memory_mib=1281, gpu=1, pods=1)
    only_limits = make_pod(
        containers=[
            client.V1Container(name="c", resources=client.V1ResourceRequirements(limits={"cpu": "1"}))
        ]
    )
    assert pod_from_api(only_limits).requests == Resources(cpu_m=1000, pods=1)
    assert pod_from_api(make_pod()).requests == Resources(pods=1)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (client.V1ObjectMeta(name="p"), OwnerKind.BARE),
        (client.V1ObjectMeta(name="p", owner_references=owner("Job")), OwnerKind.JOB),
        (client.V1ObjectMeta(name="p", owner_references=owner("DaemonSet")), OwnerKind.DAEMON_SET),
        (client.V1ObjectMeta(name="p", owner_references=owner("ReplicaSet")), OwnerKind.REPLICA_SET),
        (client.V1ObjectMeta(name="p", owner_references=owner("StatefulSet")), OwnerKind.STATEFUL_SET),
        (client.V1ObjectMeta(name="p", owner_references=owner("Node")), OwnerKind.MIRROR),
        (client.V1ObjectMeta(name="p", annotations={"kubernetes.io/config.mirror": "x"}), OwnerKind.MIRROR),
        (client.V1ObjectMeta(name="p", owner_references=owner("Workflow")), OwnerKind.OTHER),
    ],
)
def test_owner_kinds(meta, expected):
    assert pod_from_api(make_pod(metadata=meta)).owner_kind is expected


def test_pod_scheduling_constraints_and_metadata_are_kept():
    requirement = client.V1NodeSelectorRequirement(key="arch", operator="In", values=["arm64", "amd64"])
    pod = make_pod(
        metadata=client.V1ObjectMeta(
            name="p", namespace="ns", uid="uid-1", labels={"app": "x"}, annotations={"a": "b"}
        ),
        node_selector={"disk": "ssd"},
        priority=1000,
        tolerations=[
            client.V1Toleration(key="gpu", operator="Exists", effect="NoSchedule"),
            client.V1Toleration(),
        ],
        affinity=client.V1Affinity(
            node_affinity=client.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                    node_selector_terms=[client.V1NodeSelectorTerm(match_expressions=[requirement])]
                )
            )
        ),
        status=client.V1PodStatus(
            phase="Pending",
            conditions=[client.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable")],
        ),
    )
    converted = pod_from_api(pod)
    assert (converted.uid, converted.name, converted.namespace) == ("uid-1", "p", "ns")
    assert converted.unschedulable is True
    assert converted.node_name is None
    assert converted.node_selector == {"disk": "ssd"}
    assert converted.priority == 1000
    assert converted.tolerations == (
        Toleration("gpu", "Exists", "", "NoSchedule"),
        Toleration("", "Equal", "", ""),
    )
    assert converted.required_affinity == (
        NodeSelectorTerm((NodeSelectorRequirement("arch", "In", ("arm64", "amd64")),)),
    )
    assert (converted.labels, converted.annotations) == ({"app": "x"}, {"a": "b"})


def test_scheduled_or_merely_pending_pods_are_not_unschedulable():
    waiting = make_pod(status=client.V1PodStatus(phase="Pending", conditions=[]))
    assert pod_from_api(waiting).unschedulable is False


def test_a_started_pod_keeps_its_start_time_and_a_waiting_one_has_none():
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    running = make_pod(status=client.V1PodStatus(phase="Running", start_time=started))
    assert pod_from_api(running).started_at == started.timestamp()
    assert pod_from_api(make_pod(status=client.V1PodStatus(phase="Pending"))).started_at is None


def test_node_conversion_reads_group_label_allocatable_taints_and_conditions():
    node = client.V1Node(
        metadata=client.V1ObjectMeta(name="wn-1", labels={"deployer.io/group": "cpu", "pool": "p1"}),
        spec=client.V1NodeSpec(unschedulable=True, taints=[client.V1Taint(key="k", effect="NoExecute")]),
        status=client.V1NodeStatus(
            capacity={"cpu": "4", "memory": "8Gi", "pods": "110"},
            allocatable={"cpu": "3920m", "memory": "7811756Ki", "pods": "58", "nvidia.com/gpu": "2"},
            conditions=[client.V1NodeCondition(type="Ready", status="True")],
        ),
    )
    converted = node_from_api(node)
    assert converted.group == "cpu"
    assert converted.allocatable == Resources(cpu_m=3920, memory_mib=7628, gpu=2, pods=58)  # 7628.67 down
    assert converted.taints == (Taint("k", "", "NoExecute"),)
    assert (converted.ready, converted.unschedulable) == (True, True)
    assert node_from_api(node, group_label="pool").group == "p1"
    assert node_from_api(node, group_label="absent").group is None
    not_ready = client.V1Node(metadata=client.V1ObjectMeta(name="x"), status=client.V1NodeStatus())
    assert node_from_api(not_ready).ready is False


def test_budget_conversion():
    pdb = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="b", namespace="ns"),
        spec=client.V1PodDisruptionBudgetSpec(
            selector=client.V1LabelSelector(match_labels={"app": "web"}), min_available=1
        ),
        status=client.V1PodDisruptionBudgetStatus(
            disruptions_allowed=2, current_healthy=3, desired_healthy=1, expected_pods=3
        ),
    )
    budget = budget_from_api(pdb)
    assert (budget.namespace, dict(budget.match_labels), budget.disruptions_allowed) == (
        "ns",
        {"app": "web"},
        2,
    )


def test_a_finished_pod_ends_with_its_last_container():
    def ended(second: int) -> client.V1ContainerStatus:
        finished = datetime(2026, 1, 2, 3, 4, second, tzinfo=timezone.utc)
        state = client.V1ContainerState(
            terminated=client.V1ContainerStateTerminated(exit_code=0, finished_at=finished)
        )
        return client.V1ContainerStatus(
            name="c", image="i", image_id="", ready=False, restart_count=0, state=state
        )

    done = make_pod(status=client.V1PodStatus(phase="Succeeded", container_statuses=[ended(9), ended(30)]))
    assert pod_from_api(done).finished_at == datetime(2026, 1, 2, 3, 4, 30, tzinfo=timezone.utc).timestamp()
    running = make_pod(status=client.V1PodStatus(phase="Running", container_statuses=[ended(9)]))
    assert pod_from_api(running).finished_at is None
