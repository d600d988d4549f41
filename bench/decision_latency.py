"""Decision latency of the elasticity core: how long one ``plan()`` takes on a large cluster.

    python bench/decision_latency.py --pods 10000 --nodes 1000 --groups 10 --json

Builds a seeded synthetic cluster (cloud and edge groups of both arches, a DaemonSet pod per node, a few
dozen workloads with selectors and tolerations, part of the pods pending, idle and busy nodes, booting
records), then times ``--repeat`` calls of ``plan()``. Prints p50/p99 wall milliseconds, the median CPU
milliseconds, and the peak RSS of the process. ``--workloads 10000`` gives every pod its own requests
(no two pods share an equivalence class): the worst case for the bin-packer. ``--learned`` gives every
running pod a start time and ``plan()`` a run-time model that knows every class (issue 14: pending pods
then look for room that running pods free before a boot).
Target (issue 5): p50 < 1000 ms and RSS < 500 MiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from dataclasses import replace

from deployer.core.elasticity import (
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
    RuntimeModel,
    Snapshot,
    Taint,
    Toleration,
    learn,
    plan,
    workload_class,
)
from deployer.core.elasticity.scheduling import ARCH_LABEL, template_labels

GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


def build_groups(count: int) -> list[NodeGroup]:
    groups = []
    for i in range(count):
        edge = i % 4 == 3
        gpu = i % 5 == 4
        groups.append(
            NodeGroup(
                name=f"g{i}",
                min_size=0,
                max_size=400,
                shape=Resources(4000 * (1 + i % 3), 8192 * (1 + i % 3), 2 if gpu else 0, 110),
                kind=GroupKind.EDGE if edge else GroupKind.CLOUD,
                arch="arm64" if edge or i % 3 == 2 else "amd64",
                labels={"pool": f"pool{i % 4}"},
                taints=(GPU_TAINT,) if gpu else (),
                cost_per_hour=0.0 if edge else 0.05 * (1 + i % 3),
                priority=i % 2,
            )
        )
    return groups


def build_workloads(rng: random.Random, count: int) -> list[dict[str, object]]:
    workloads = []
    for i in range(count):
        selector = {}
        if i % 4 == 1:
            selector[ARCH_LABEL] = rng.choice(["amd64", "arm64"])
        if i % 7 == 3:
            selector["pool"] = f"pool{rng.randrange(4)}"
        gpu = 1 if i % 11 == 5 else 0
        workloads.append(
            {
                # Any size in a range: with --workloads 10000 every pod is its own equivalence class.
                "requests": Resources(rng.randrange(50, 2000, 10), rng.randrange(64, 4096, 16), gpu, 1),
                "selector": selector,
                "tolerations": (Toleration("nvidia.com/gpu", "Exists"),) if gpu else (),
                "owner": OwnerKind.JOB if i % 3 == 0 else OwnerKind.REPLICA_SET,
                "priority": rng.choice([0, 0, 0, 100]),
            }
        )
    return workloads


def build_cluster(
    pods: int, nodes: int, group_count: int, seed: int, workload_count: int = 40
) -> tuple[Snapshot, list[NodeGroup], ElasticityState]:
    rng = random.Random(seed)
    groups = build_groups(group_count)
    node_list: list[Node] = []
    records: dict[str, NodeRecord] = {}
    now = 10_000.0
    for i in range(nodes):
        group = groups[i % group_count]
        name = f"{group.name}-n{i}"
        labels = template_labels(group)
        labels["kubernetes.io/hostname"] = name
        booting = i % 50 == 0
        node_list.append(Node(name, group.name, group.shape, labels, group.taints, ready=not booting))
        phase = NodePhase.POWERING_ON if booting else NodePhase.USED
        records[name] = NodeRecord(name, group.name, phase, now - 60)
    pod_list: list[Pod] = []
    for node in node_list:  # one DaemonSet pod per node
        pod_list.append(
            Pod(
                f"ds-{node.name}",
                f"ds-{node.name}",
                "kube-system",
                Resources(100, 64, 0, 1),
                node.name,
                "Running",
                owner_kind=OwnerKind.DAEMON_SET,
                tolerations=(Toleration(operator="Exists"),),
            )
        )
    workloads = build_workloads(rng, workload_count)
    ready = [n for n in node_list if n.ready]
    free = {n.name: n.allocatable for n in ready}
    serial = 0
    while len(pod_list) < pods:
        serial += 1
        w = workloads[rng.randrange(len(workloads))]
        requests: Resources = w["requests"]  # type: ignore[assignment]
        node_name = None
        phase = "Pending"
        if rng.random() < 0.6:  # try to bind it somewhere it fits (a running pod)
            node = ready[rng.randrange(len(ready))]
            if requests.fits_in(free[node.name]) and not w["selector"] and not node.taints:
                free[node.name] = free[node.name] - requests
                node_name, phase = node.name, "Running"
        pod_list.append(
            Pod(
                f"p{serial}",
                f"p{serial}",
                requests=requests,
                node_name=node_name,
                phase=phase,
                unschedulable=node_name is None,
                node_selector=w["selector"],  # type: ignore[arg-type]
                tolerations=w["tolerations"],  # type: ignore[arg-type]
                owner_kind=w["owner"],  # type: ignore[arg-type]
                priority=w["priority"],  # type: ignore[arg-type]
                created_at=now - rng.random() * 600,
            )
        )
    return Snapshot(tuple(node_list), tuple(pod_list)), groups, ElasticityState(records=records)


def with_start_times(snapshot: Snapshot, seed: int) -> Snapshot:
    """Every running pod started within the last 10 minutes."""
    rng = random.Random(seed)
    pods = tuple(
        replace(p, started_at=10_000.0 - rng.random() * 600) if p.node_name is not None else p
        for p in snapshot.pods
    )
    return replace(snapshot, pods=pods)


def learned_model(snapshot: Snapshot, seed: int) -> RuntimeModel:
    """A full window of run times (1 to 15 minutes) for every class in the snapshot."""
    rng = random.Random(seed)
    model = RuntimeModel()
    classes = sorted({workload_class(p) for p in snapshot.pods})
    return learn(model, ((c, 60.0 + rng.random() * 840) for c in classes for _ in range(model.window)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workloads", type=int, default=40, help="distinct pod specs (equivalence classes)")
    parser.add_argument("--learned", action="store_true", help="a run-time model that knows every class")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    snapshot, groups, state = build_cluster(args.pods, args.nodes, args.groups, args.seed, args.workloads)
    runtimes = learned_model(snapshot, args.seed) if args.learned else None
    if args.learned:
        snapshot = with_start_times(snapshot, args.seed)
    settings = ElasticitySettings()
    timings, cpu_timings = [], []
    result = None
    for _ in range(args.repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = plan(snapshot, groups, state, settings, 10_000.0, runtimes)
        timings.append((time.perf_counter() - start) * 1000)
        cpu_timings.append((time.process_time() - cpu_start) * 1000)
    assert result is not None
    timings.sort()
    figures = {
        "pods": args.pods,
        "nodes": args.nodes,
        "groups": args.groups,
        "pending": sum(1 for p in snapshot.pods if p.node_name is None),
        "scale_up_nodes": sum(s.count for s in result.scale_ups),
        "unplaceable": len(result.unplaceable),
        "learned": args.learned,
        "repeat": args.repeat,
        "p50_ms": round(statistics.median(timings), 1),
        "p99_ms": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 1),
        # CPU time of the process: what one plan() costs when the machine is shared with other work.
        "cpu_p50_ms": round(statistics.median(cpu_timings), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
