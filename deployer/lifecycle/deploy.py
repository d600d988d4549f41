"""Life-cycle use cases of a deployment through the IM: submit, follow, inspect, scale, destroy.

Called by the CLI (``deployer.cli.lifecycle_cmds``) and reusable by the daemon. Each function takes its
collaborators explicitly (an ``IMClient``, the ``DeploymentStore``, callbacks for progress, the clock)
and returns plain values; nothing here prints. The rules it enforces:

- a deployment is recorded before its create request leaves, so two concurrent creates cannot take
  the same name and a crash mid-create leaves a record (with its deployment tag) to recover from;
  a definite refusal removes that record again, so nothing is left behind;
- following polls the state, reports each per-VM change, survives a temporarily unreachable IM until
  the deadline, and on failure returns the tail of the contextualization log;
- scaling edits the IM's own copy of the TOSCA (``count``, ``removal_list``), so secrets never pass
  through deployer's store, and removals name the VMs explicitly;
- destroying is idempotent: an infrastructure that is already gone counts as destroyed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from deployer.adapters.im.client import CreateOutcomeUnknown, IMClient, InfraState
from deployer.adapters.state.store import STATUS_SUBMITTING, DeploymentRecord, DeploymentStore
from deployer.errors import RemoteError, RemoteNotFound, TimeoutExpired, TransientError, UserError
from deployer.logs import MASK

log = logging.getLogger(__name__)

FINAL_OK = "configured"
FINAL_FAILED = frozenset({"failed", "unconfigured"})
STATUS_DESTROYED = "destroyed"
CONTMSG_TAIL_LINES = 25
# A create request is answered within seconds; a "submitting" record older than this is an orphan.
SUBMIT_GRACE_S = 120.0
_SECRET_OUTPUT_WORDS = ("password", "secret", "token", "key", "credential")


@dataclass(frozen=True)
class VMView:
    vm_id: str
    state: str
    node: str | None = None  # the TOSCA node (RADL system) the VM belongs to
    ip: str | None = None


@dataclass(frozen=True)
class ListedDeployment:
    name: str
    cloud: str
    infrastructure_id: str | None
    im_url: str
    status: str
    drift: str | None  # None | "gone in IM" | "unknown to deployer" | "IM unreachable: ..."


@dataclass(frozen=True)
class ScaleResult:
    group: str
    node: str
    before: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def tail(text: str, lines: int = CONTMSG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ---- create -------------------------------------------------------------------------------------


def submit(
    store: DeploymentStore,
    client: IMClient,
    *,
    name: str,
    cloud: str,
    tosca: str,
    tosca_redacted: str,
    deployment_tag: str,
    spec_hash: str,
    auth_file: str | None = None,
    clouds: Sequence[str] = (),
    insecure: bool = False,
    simulated: bool = False,
) -> DeploymentRecord:
    """Record the deployment, submit its TOSCA, and store the infrastructure id."""
    store.add(
        DeploymentRecord(
            name=name,
            cloud=cloud,
            im_url=client.url,
            infrastructure_id=None,
            deployment_tag=deployment_tag,
            spec_hash=spec_hash,
            tosca_redacted=tosca_redacted,
            status=STATUS_SUBMITTING,
            auth_file=auth_file,
            clouds=",".join(clouds or [cloud]),
            insecure=insecure,
            simulated=simulated,
        )
    )
    known = [r.infrastructure_id for r in store.all() if r.infrastructure_id]
    try:
        inf_id = client.create(tosca, deployment_tag=deployment_tag, skip_ids=known)
    except CreateOutcomeUnknown as err:
        raise TransientError(
            f"{err}. The record is kept: `deployer status {name}` finds it by its tag once the IM answers, "
            f"`deployer destroy {name}` removes whatever exists"
        ) from None
    except RemoteError:
        store.delete(name)  # refused, or confirmed absent: nothing exists, leave nothing behind
        raise
    return store.update(name, infrastructure_id=inf_id, status="pending")


def recover_submission(
    store: DeploymentStore, client: IMClient, record: DeploymentRecord, *, now: float | None = None
) -> DeploymentRecord:
    """For a record stuck in ``submitting``: find its infrastructure by tag, or forget the record.

    A young record may belong to a create still in flight in another process: it is left alone.
    """
    if record.infrastructure_id:
        return record
    found = client.find_by_tag(record.deployment_tag)
    if found is None:
        age = (time.time() if now is None else now) - record.created_at
        if age < SUBMIT_GRACE_S:
            raise TransientError(
                f"deployment {record.name!r} is still being submitted (for {age:.0f}s); try again shortly"
            )
        store.delete(record.name)
        raise RemoteNotFound(
            f"deployment {record.name!r} was never created in the IM (no infrastructure carries tag "
            f"{record.deployment_tag}); its record is removed, run create again"
        )
    return store.update(record.name, infrastructure_id=found, status="pending")


def follow(
    client: IMClient,
    inf_id: str,
    *,
    timeout: float,
    on_change: Callable[[InfraState | None, InfraState], None] = lambda old, new: None,
    on_unreachable: Callable[[RemoteError], None] = lambda err: None,
    poll_interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> InfraState:
    """Poll the state until ``configured`` (returned), a failure (RemoteError with the log tail) or
    ``timeout`` seconds (TimeoutExpired). An unreachable IM is reported and polled again."""
    deadline = clock() + timeout
    last: InfraState | None = None
    while True:
        try:
            current = client.state(inf_id)
        except TransientError as err:
            on_unreachable(err)
            current = None
        if current is not None:
            if current != last:
                on_change(last, current)
                last = current
            if current.state == FINAL_OK:
                return current
            if current.state in FINAL_FAILED:
                raise RemoteError(
                    f"infrastructure {inf_id} is {current.state}; contextualization log (last lines):\n"
                    + _contmsg_tail(client, inf_id)
                )
        if clock() >= deadline:
            seen = last.state if last else "unknown (IM unreachable)"
            raise TimeoutExpired(
                f"infrastructure {inf_id} still {seen} after {timeout:.0f}s; it keeps running in the IM"
            )
        sleep(min(poll_interval, max(0.0, deadline - clock())))


def _contmsg_tail(client: IMClient, inf_id: str) -> str:
    try:
        return tail(client.contmsg(inf_id)) or "(empty)"
    except RemoteError as err:
        return f"(unavailable: {err})"


# ---- read ---------------------------------------------------------------------------------------


def vm_views(client: IMClient, inf_id: str) -> list[VMView]:
    """Every VM with its state, TOSCA node and first IP, ordered by IM id."""
    state = client.state(inf_id)
    views = []
    for vm_id in sorted(state.vm_states, key=_numeric):
        try:
            info = client.vm_info(inf_id, vm_id)
        except RemoteNotFound:
            continue  # removed between the two calls
        ip = info.get("net_interface.1.ip") or info.get("net_interface.0.ip")
        views.append(VMView(vm_id, state.vm_states[vm_id], info.get("id"), ip))
    return views


def _numeric(vm_id: str) -> tuple[int, str]:
    return (int(vm_id), "") if vm_id.isdigit() else (1 << 30, vm_id)


def list_with_drift(
    records: Sequence[DeploymentRecord], listings: dict[str, list[str] | RemoteError]
) -> list[ListedDeployment]:
    """Merge our records with what each IM reports (``listings``: IM URL -> ids, or the error).

    Pure: the caller does the listing. Drift is a record whose infrastructure the IM no longer has,
    or an infrastructure on one of our IMs (same credentials) that no record knows.
    """
    rows: list[ListedDeployment] = []
    known: dict[str, set[str]] = {}
    for rec in records:
        listing = listings.get(rec.im_url)
        drift: str | None = None
        if isinstance(listing, RemoteError):
            drift = f"IM unreachable: {listing}"
        elif listing is not None and rec.infrastructure_id and rec.infrastructure_id not in listing:
            drift = "gone in IM" if rec.status != STATUS_DESTROYED else None
        if rec.infrastructure_id:
            known.setdefault(rec.im_url, set()).add(rec.infrastructure_id)
        rows.append(
            ListedDeployment(rec.name, rec.cloud, rec.infrastructure_id, rec.im_url, rec.status, drift)
        )
    for url, listing in sorted(listings.items()):
        if isinstance(listing, RemoteError):
            continue
        for inf_id in listing:
            if inf_id not in known.get(url, set()):
                rows.append(ListedDeployment("-", "-", inf_id, url, "-", "unknown to deployer"))
    return rows


def is_secret_output(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_OUTPUT_WORDS)


def mask_outputs(outputs: dict[str, Any], *, show_secrets: bool) -> dict[str, Any]:
    if show_secrets:
        return dict(outputs)
    return {k: (MASK if is_secret_output(k) and v not in (None, "") else v) for k, v in outputs.items()}


# ---- change -------------------------------------------------------------------------------------


def scale(
    client: IMClient, inf_id: str, *, group: str, count: int, remove: Sequence[str] | None = None
) -> ScaleResult:
    """Set the VM count of one worker group. Removals name their VMs (``remove`` or the newest)."""
    if count < 0:
        raise UserError("--count must be 0 or more")
    document = yaml.safe_load(client.tosca(inf_id))
    nodes: dict[str, Any] = (document.get("topology_template") or {}).get("node_templates") or {}
    node = _group_node(nodes, group)
    current = tuple(v.vm_id for v in vm_views(client, inf_id) if v.node == node)
    scalable = nodes[node].setdefault("capabilities", {}).setdefault("scalable", {})
    properties = scalable.setdefault("properties", {})
    properties.pop("removal_list", None)
    removal: tuple[str, ...] = ()
    if count < len(current):
        removal = _choose_removal(current, len(current) - count, remove)
        properties["removal_list"] = list(removal)
    elif remove:
        raise UserError(
            f"--remove only applies when lowering the count (group {group} has {len(current)} VMs)"
        )
    if count == len(current):
        return ScaleResult(group, node, current)
    properties["count"] = count
    added = client.update(inf_id, yaml.safe_dump(document, sort_keys=False))
    return ScaleResult(group, node, current, added=tuple(added), removed=removal)


def _group_node(nodes: dict[str, Any], group: str) -> str:
    from deployer.core.render import node_id

    for candidate in (node_id(group), group):
        if candidate in nodes:
            return candidate
    scalable = sorted(n for n, t in nodes.items() if ((t or {}).get("capabilities") or {}).get("scalable"))
    raise UserError(
        f"no worker group {group!r} in this deployment; scalable nodes: {', '.join(scalable) or 'none'}"
    )


def _choose_removal(current: Sequence[str], how_many: int, remove: Sequence[str] | None) -> tuple[str, ...]:
    if not remove:
        return tuple(sorted(current, key=_numeric)[-how_many:])  # the newest VMs go first
    unknown = [vm for vm in remove if vm not in current]
    if unknown:
        raise UserError(
            f"--remove names VMs {', '.join(unknown)} that are not in the group ({', '.join(current)})"
        )
    if len(set(remove)) != how_many:
        raise UserError(f"--remove must name exactly {how_many} VM(s) to go from {len(current)} VMs")
    return tuple(remove)


def destroy(
    store: DeploymentStore, client: IMClient | None, record: DeploymentRecord, *, keep_record: bool = False
) -> bool:
    """Destroy the infrastructure (already gone is success) and forget it. Returns whether it existed."""
    existed = False
    if client is not None and record.infrastructure_id:
        existed = client.destroy(record.infrastructure_id)
    elif client is not None and record.status == STATUS_SUBMITTING:
        found = client.find_by_tag(record.deployment_tag)
        existed = found is not None and client.destroy(found)
    if keep_record:
        store.update(record.name, status=STATUS_DESTROYED)
    else:
        store.delete(record.name)
    return existed
