"""``plan()``: one pure elasticity decision. Called by the daemon's reconcile loop, ``daemon explain``,
``--once`` runs and the simulator, all with the same inputs and the same meaning.
"""

from __future__ import annotations

from collections.abc import Sequence

from deployer.core.elasticity.index import index_snapshot
from deployer.core.elasticity.lifecycle import observe
from deployer.core.elasticity.model import (
    ElasticitySettings,
    ElasticityState,
    NodeGroup,
    Plan,
    Snapshot,
)
from deployer.core.elasticity.runtimes import RuntimeModel
from deployer.core.elasticity.scaledown import scale_down
from deployer.core.elasticity.scaleup import scale_up


def plan(
    snapshot: Snapshot,
    groups: Sequence[NodeGroup],
    state: ElasticityState,
    settings: ElasticitySettings,
    now: float,
    runtimes: RuntimeModel | None = None,
) -> Plan:
    """Decide which groups grow, which nodes go and which boots failed. Pure: no I/O, no clock, no mutation.

    Inputs:
      * ``snapshot``: every node and pod (DaemonSet/mirror pods included, they count as used room but never
        as work) and the PodDisruptionBudgets. ``Node.group`` names the group of a node we manage. When
        ``snapshot.synced`` is False nothing is decided (an empty plan with ``state=None``).
      * ``groups``: the node groups. Edge boards are named by ``NodeGroup.hosts`` (= Kubernetes node names).
      * ``state.records``: what only we know, keyed by node name. Must hold a POWERING_ON record for every
        node powered on and not yet Ready (cloud: named as the IM reports the new VMs), DRAINING /
        POWERING_OFF records for nodes being removed, FAILED records after a MarkFailed, and the IDLE/USED
        records that ``Plan.state`` returned last round (their ``idle_since`` drives idle scale-down: a node
        without a record is adopted with ``idle_since=now``). ``last_scale_up`` drives the cooldowns,
        ``group_backoff_until`` the backoff after a power-on error and ``group_failures`` (boots failed in
        a row, kept by ``record_failed``) the doubling of the backoff after failed boots.
      * ``now``: seconds on the caller's clock (wall or virtual), the same clock as every ``since`` field.
      * ``runtimes``: run times of finished pods per workload class (``runtimes.learn``), kept by the caller.
        With ``settings.learn_run_times`` a pending pod waits for room that running pods of known run time
        free sooner than a boot would (its explanation says which node); None or an unmatched model
        decides exactly as without one. Running pods need ``started_at`` for this.

    Capacity: pending pods are packed first onto the free room of Ready, schedulable nodes that are not
    leaving; then onto booting nodes, each counted as one empty node of its group's shape (less what is
    already bound to it), i.e. POWERING_ON records within ``provision_timeout`` and NotReady nodes of a
    cloud group younger than ``provision_timeout``; only the rest grows groups.

    Output and what the caller does with it:
      * ``Plan.state``: persist it first (observed transitions: booted nodes, idle stamps, vanished VMs).
      * ``ScaleUp(group, count, nodes=...)``: one power-on call for ``count`` nodes (cloud: one IM
        addresource; edge: wake ``nodes``), then ``lifecycle.record_powering_on(state, group, names, now)``.
        On an outright error: ``record_group_error``, and the next round falls back to other groups.
      * ``ScaleDown(group, nodes)``: cordon and drain each node (eviction API), ``record_draining``; once
        drained, power off (IM removal of the group's VMs in one call, SSH shutdown, or just the cordon for
        always-on boards) and ``record_powering_off``. A node left DRAINING (drain unfinished) is sent again
        in the next round's ScaleDown, and so is one still present ``power_off_timeout`` after its
        power-off; the actuator decides to give a blocked drain up (uncordon, record USED). The observed
        state later drops the record of a vanished cloud node and marks a dark board OFF.
      * ``MarkFailed(node)``: the boot timed out; remove the VM (cloud) and ``record_failed``. A cloud
        group then backs off for ``failure_backoff`` (doubling with each failure in a row, up to 16x) and
        other groups take its pods in the same round; a board rests ``failure_backoff`` and is tried at
        most ``max_power_on_attempts`` times.
      * ``unplaceable`` pods never cause growth; ``explanations`` says why each pending pod waits and
        ``kept_nodes`` why each node idle (or underutilised) long enough is not removed.
    """
    if not snapshot.synced:
        waiting = {
            p.uid: "waiting: the cluster snapshot has not synced yet"
            for p in snapshot.pods
            if p.node_name is None
        }
        return Plan(explanations=waiting)
    index = index_snapshot(snapshot)
    seen = observe(index, groups, state, settings, now)
    up = scale_up(index, seen.groups, seen.state, settings, now, runtimes)
    growing = {s.group for s in up.scale_ups}
    downs, kept = scale_down(
        index, seen.groups, seen.state, settings, now, up.node_bins, up.claimed, growing, snapshot.budgets
    )
    return Plan(
        scale_ups=up.scale_ups,
        scale_downs=downs,
        failures=seen.failures,
        unplaceable=up.unplaceable,
        explanations=up.explanations,
        kept_nodes=kept,
        state=seen.state,
    )
