"""A plan and the node records as plain data: what ``daemon run --dry-run`` and ``daemon explain`` print.

Pure: called by the daemon CLI commands with the round the reconciler returned and the snapshot it used.
"""

from __future__ import annotations

from typing import Any

from deployer.core.elasticity.model import ElasticityState, Plan, Snapshot
from deployer.core.elasticity.scheduling import is_pending


def plan_report(plan: Plan, state: ElasticityState, snapshot: Snapshot) -> dict[str, Any]:
    """Actions, unplaceable pods, why each pending pod waits, and what we remember of each node."""
    pods = {pod.uid: pod for pod in snapshot.pods}

    def pod_name(uid: str) -> str:
        pod = pods.get(uid)
        return f"{pod.namespace}/{pod.name}" if pod is not None else uid

    unplaceable = {item.pod_uid: item.reason for item in plan.unplaceable}
    pending = []
    for pod in snapshot.pods:
        if not is_pending(pod):
            continue
        reason = unplaceable.get(pod.uid) or plan.explanations.get(pod.uid) or "no decision concerns it"
        pending.append({"pod": f"{pod.namespace}/{pod.name}", "uid": pod.uid, "reason": reason})
    return {
        "synced": snapshot.synced,
        "scale_ups": [
            {
                "group": up.group,
                "count": up.count,
                "nodes": list(up.nodes),
                "reason": up.reason,
                "pods": [pod_name(uid) for uid in up.pod_uids],
            }
            for up in plan.scale_ups
        ],
        "scale_downs": [
            {"group": down.group, "nodes": list(down.nodes), "reason": down.reason}
            for down in plan.scale_downs
        ],
        "failures": [{"node": f.node, "group": f.group, "reason": f.reason} for f in plan.failures],
        "unplaceable": [{"pod": pod_name(item.pod_uid), "reason": item.reason} for item in plan.unplaceable],
        "pending": pending,
        "nodes": [
            {
                "name": record.name,
                "group": record.group,
                "phase": record.phase.value,
                "since": record.since,
                "idle_since": record.idle_since,
                "vm_id": record.vm_id,
            }
            for record in sorted(state.records.values(), key=lambda r: (r.group, r.name))
        ],
        "backoff_until": dict(state.group_backoff_until),
    }
