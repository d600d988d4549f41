"""Life-cycle use cases of a deployment through the IM: submit, follow, inspect, scale, destroy.

Called by the CLI (``deployer.cli.lifecycle_cmds``) and reusable by the daemon. Each function takes its
collaborators explicitly (an ``IMClient``, the ``DeploymentStore``, callbacks for progress, the clock)
and returns plain values; nothing here prints. The rules it enforces:

- a deployment is recorded before its create request leaves, so two concurrent creates cannot take
  the same name and a crash mid-create leaves a record (with its deployment tag) to recover from;
- the tag is the deployment's identity (``deployer.lifecycle.identity``): after a create that was not
  answered, the template is sent again only once a late request can no longer land (the client's read
  timeout plus a margin) and the IM confirms that nothing carries the tag; what appears is adopted, and
  any second infrastructure with the tag is destroyed;
- a record is dropped only when the IM cannot hold its infrastructure: a definite refusal, or nothing
  carrying the tag once the landing deadline has passed. A failed lookup keeps it;
- following polls the state, reports each per-VM change, survives a temporarily unreachable IM until
  the deadline, and on failure returns the tail of the contextualization log;
- scaling is relative and touches only the group asked: VMs are added by a RADL ``deploy`` of that one
  system and removed by id, never by posting absolute counts that could undo another group's change. A
  change with no answer is recorded as pending, reported as unknown (exit 5), and reconciled later;
- destroying is verified: the record goes only once the IM lists nothing with the deployment's id or tag.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from deployer.adapters.im.client import IMClient, InfraState
from deployer.adapters.state.store import STATUS_SUBMITTING, DeploymentRecord, DeploymentStore
from deployer.errors import (
    NotDelivered,
    OutcomeUnknown,
    RemoteError,
    RemoteNotFound,
    TimeoutExpired,
    TransientError,
    UserError,
)
from deployer.lifecycle.identity import TagScan, scan_tags, settle_duplicates, settled_message
from deployer.logs import MASK

log = logging.getLogger(__name__)

FINAL_OK = "configured"
FINAL_FAILED = frozenset({"failed", "unconfigured"})
STATUS_DESTROYED = "destroyed"
STATUS_DESTROYING = "destroying"
CONTMSG_TAIL_LINES = 25
# Records written before landing deadlines existed: a "submitting" record older than this is an orphan.
SUBMIT_GRACE_S = 120.0
# A request the client gave up on may still be queued in a proxy or in the IM: it can land until the
# read timeout plus this margin after it was sent. DEPLOYER_IM_LANDING_MARGIN overrides it (tests).
LANDING_MARGIN_S = 15.0
# Once a late request can no longer land, how long to keep asking an unreachable IM before giving up.
UNREACHABLE_PATIENCE_S = 20.0
# A destroyed infrastructure can stay in the IM's listing for a moment (the IM saves deletions with
# retries): how long destroy waits for the listing to confirm it.
DESTROY_VERIFY_S = 30.0
POLL_S = 1.0
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


def landing_margin() -> float:
    raw = os.environ.get("DEPLOYER_IM_LANDING_MARGIN", "")
    try:
        return float(raw) if raw else LANDING_MARGIN_S
    except ValueError:
        raise UserError(f"DEPLOYER_IM_LANDING_MARGIN={raw!r} is not a number of seconds") from None


def landing_deadline(client: IMClient, sent_at: float) -> float:
    """Until when a request sent at ``sent_at`` and not answered may still take effect."""
    return sent_at + client.read_timeout + landing_margin()


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
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DeploymentRecord:
    """Record the deployment, submit its TOSCA, and store the infrastructure id (exactly one exists).

    If ``name`` is already recorded with the same spec, this resumes it instead: its infrastructure is
    adopted by tag, or, when its create can no longer land and nothing carries the tag, sent afresh.
    """
    existing = store.find(name)
    if existing is not None:
        if existing.spec_hash != spec_hash:
            raise UserError(
                f"a deployment named {name!r} already exists with another spec; pick another --name or "
                "destroy it first"
            )
        if existing.status in (STATUS_DESTROYING, STATUS_DESTROYED):
            raise UserError(
                f"deployment {name!r} is {existing.status}; run `deployer destroy {name}` to finish and "
                "forget it, then create it again"
            )
        resumed = resume_submission(store, client, existing, notify=notify, clock=clock, sleep=sleep)
        if resumed is not None:
            return resumed
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
            # Set before anything is sent, so a process killed at any point leaves a usable deadline.
            landing_deadline=landing_deadline(client, clock()),
        )
    )
    return _send_create(store, client, store.get(name), tosca, notify=notify, clock=clock, sleep=sleep)


def _send_create(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    tosca: str,
    *,
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DeploymentRecord:
    """POST the template for ``record`` (at most twice) and record the infrastructure id.

    A second POST goes out only after the first one can no longer land and the IM confirms that nothing
    carries the tag; whatever appears in the meantime is adopted.
    """
    name, tag = record.name, record.deployment_tag
    ambiguous: TransientError | None = None
    for _attempt in (1, 2):
        store.update(name, landing_deadline=landing_deadline(client, clock()))
        try:
            inf_id = client.create(tosca)
            break
        except NotDelivered:
            store.delete(name)  # never reached the IM (and an earlier attempt is confirmed absent)
            raise
        except TransientError as err:
            ambiguous = ambiguous or err  # the first cause is the one to report
            notify(f"{err}; looking for the infrastructure by its tag before deciding anything")
            found = _await_landing(store, client, store.get(name), clock=clock, sleep=sleep)
            if found is not None:
                inf_id = found
                break
            notify(
                f"the IM has no infrastructure with tag {tag} and the request can no longer land: "
                "sending it again"
            )
        except RemoteError:
            store.delete(name)  # refused: nothing was created (an earlier attempt is confirmed absent)
            raise
    else:
        store.delete(name)
        raise TransientError(
            f"{ambiguous}; twice no infrastructure with tag {tag} appeared, so nothing was created. Run the "
            "command again when the IM is healthy"
        )
    record = store.update(name, infrastructure_id=inf_id, status="pending")
    if ambiguous is not None:  # a late first request and a second one may both have landed
        settled = settle_duplicates(store, client, record)
        for line in settled_message(name, settled):
            notify(line)
        record = settled.record
    return record


def resume_submission(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    *,
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DeploymentRecord | None:
    """The recorded deployment, its interrupted create adopted; None (record dropped) when that create
    can no longer land and nothing carries the tag, so it must be sent afresh."""
    if not record.infrastructure_id:
        if clock() < _landing_deadline_of(record):
            notify(f"{record.name}: waiting for its interrupted create to land, if it does")
        found = _await_landing(store, client, record, clock=clock, sleep=sleep)
        if found is None:
            store.delete(record.name)
            notify(f"{record.name}: its interrupted create never reached the IM; submitting it again")
            return None
        record = store.update(record.name, infrastructure_id=found, status="pending")
    settled = settle_duplicates(store, client, record)
    for line in settled_message(record.name, settled):
        notify(line)
    notify(f"{record.name}: resuming infrastructure {settled.record.infrastructure_id}")
    return settled.record


def _landing_deadline_of(record: DeploymentRecord) -> float:
    """Records from before landing deadlines existed get a fixed grace period after their creation."""
    return record.landing_deadline or record.created_at + SUBMIT_GRACE_S


def _await_landing(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str | None:
    """Watch for an infrastructure carrying the record's tag until a late create can no longer land.

    The id of the first one seen; None once the IM has answered, after the landing deadline, that none
    exists. ``OutcomeUnknown`` when it cannot be asked; any other error (an expired token, say) keeps
    the record too, with a hint.
    """
    deadline = _landing_deadline_of(record)
    give_up = deadline + UNREACHABLE_PATIENCE_S
    last_error: RemoteError | None = None
    while True:
        asked_at = clock()
        try:
            found = scan_tags(store, client).carrying(record.deployment_tag)
        except TransientError as err:
            last_error = err
        except RemoteError as err:
            raise type(err)(f"{err}; {_kept_hint(record.name)}", status=err.status) from None
        else:
            if found:
                return found[0]
            if asked_at >= deadline:
                return None
        if clock() >= give_up:
            raise OutcomeUnknown(
                f"{last_error}; cannot tell whether the IM created the infrastructure (tag "
                f"{record.deployment_tag}). {_kept_hint(record.name)}"
            )
        sleep(POLL_S)


def _kept_hint(name: str) -> str:
    return (
        f"The record is kept: `deployer status {name}` adopts the infrastructure once the IM answers, "
        f"`deployer destroy {name}` removes whatever exists"
    )


def recover_submission(
    store: DeploymentStore, client: IMClient, record: DeploymentRecord, *, now: float | None = None
) -> DeploymentRecord:
    """For a record stuck in ``submitting``: adopt its infrastructure by tag, or forget the record once
    no create request of it can land any more. A failed lookup changes nothing."""
    if record.infrastructure_id:
        return record
    settled = settle_duplicates(store, client, record)
    if settled.record.infrastructure_id:
        return settled.record
    now = time.time() if now is None else now
    deadline = _landing_deadline_of(record)
    if now < deadline:
        raise TransientError(
            f"deployment {record.name!r} is still being submitted: its create request may land in the IM "
            f"for {deadline - now:.0f}s more; try again then"
        )
    store.delete(record.name)
    raise RemoteNotFound(
        f"deployment {record.name!r} was never created in the IM (no infrastructure carries tag "
        f"{record.deployment_tag}); its record is removed, run create again"
    )


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
    records: Sequence[DeploymentRecord], listings: dict[str, TagScan | RemoteError]
) -> list[ListedDeployment]:
    """Merge our records with what each IM reports (``listings``: IM URL -> its tag scan, or the error).

    Pure: the caller does the listing. Drift is a record whose infrastructure the IM no longer has,
    a second infrastructure carrying a deployment's tag (a duplicate), or an infrastructure on one of
    our IMs (same credentials) that no record knows.
    """
    owner = {rec.deployment_tag: rec.name for rec in records}
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
        for inf_id, tag in listing.tags.items():
            if inf_id not in known.get(url, set()):
                name = owner.get(tag)
                drift = f"duplicate of {name}" if name else "unknown to deployer"
                rows.append(ListedDeployment(name or "-", "-", inf_id, url, "-", drift))
    return rows


def is_secret_output(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_OUTPUT_WORDS)


def mask_outputs(outputs: dict[str, Any], *, show_secrets: bool) -> dict[str, Any]:
    if show_secrets:
        return dict(outputs)
    return {k: (MASK if is_secret_output(k) and v not in (None, "") else v) for k, v in outputs.items()}


# ---- change -------------------------------------------------------------------------------------


def await_pending_change(
    store: DeploymentStore,
    record: DeploymentRecord,
    *,
    group: str | None = None,
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DeploymentRecord:
    """Wait until an unanswered change (of ``group``, or any) can no longer land, then forget it.

    After that the IM's own listing is the truth: a scale computed from it cannot double an earlier,
    late change.
    """
    pending = json.loads(record.pending_change) if record.pending_change else None
    if not pending or (group is not None and pending.get("group") != group):
        return record
    wait = float(pending.get("until", 0)) - clock()
    if wait > 0:
        notify(
            f"{record.name}: waiting {wait:.0f}s until an unanswered {pending.get('what')} can no longer land"
        )
        sleep(wait)
    return store.update(record.name, pending_change=None)


def pending_change_note(
    store: DeploymentStore, record: DeploymentRecord, *, now: float | None = None
) -> str | None:
    """Reconcile an unanswered change with the IM's listing: once it can no longer land, the listing is
    the truth and the change is forgotten. Says what happened, or None when nothing was pending."""
    if not record.pending_change:
        return None
    pending = json.loads(record.pending_change)
    left = float(pending.get("until", 0)) - (time.time() if now is None else now)
    if left > 0:
        return f"the {pending.get('what')} was not answered and may still take effect for {left:.0f}s"
    store.update(record.name, pending_change=None)
    return f"the {pending.get('what')} was not answered; the VMs listed are what the IM has"


def scale(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    *,
    group: str,
    count: int,
    remove: Sequence[str] | None = None,
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ScaleResult:
    """Set the VM count of one worker group by relative operations on that group alone."""
    if count < 0:
        raise UserError("--count must be 0 or more")
    assert record.infrastructure_id is not None
    inf_id = record.infrastructure_id
    record = await_pending_change(store, record, group=group, notify=notify, clock=clock, sleep=sleep)
    document = yaml.safe_load(client.tosca(inf_id))
    nodes: dict[str, Any] = (document.get("topology_template") or {}).get("node_templates") or {}
    node = _group_node(nodes, group)
    current = tuple(v.vm_id for v in vm_views(client, inf_id) if v.node == node)
    if remove and count >= len(current):
        raise UserError(
            f"--remove only applies when lowering the count (group {group} has {len(current)} VMs)"
        )
    if count > len(current):
        what = f"scale of group {group} to {count} VMs"
        until = landing_deadline(client, clock())
        store.update(record.name, pending_change=json.dumps({"group": group, "what": what, "until": until}))
        try:
            added = client.add_vms(inf_id, node, count - len(current))
        except NotDelivered:
            store.update(record.name, pending_change=None)
            raise
        except TransientError as err:
            raise OutcomeUnknown(
                f"{err}. The {what} may or may not have taken effect: `deployer status {record.name}` shows "
                f"the group's VMs once a late answer can no longer land (in {until - clock():.0f}s); run the "
                "same scale again then if needed"
            ) from None
        except RemoteError:
            store.update(record.name, pending_change=None)
            raise
        store.update(record.name, pending_change=None)
        return ScaleResult(group, node, current, added=tuple(added))
    if count < len(current):
        removal = _choose_removal(current, len(current) - count, remove)
        try:
            client.remove_vms(inf_id, removal)
        except TransientError as err:
            raise OutcomeUnknown(
                f"{err}. Removing VMs {', '.join(removal)} of group {group} may or may not have taken "
                f"effect: `deployer status {record.name}` shows the group's VMs; running the same scale "
                "again is safe"
            ) from None
        return ScaleResult(group, node, current, removed=removal)
    return ScaleResult(group, node, current)


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


@dataclass(frozen=True)
class DestroyResult:
    destroyed: tuple[str, ...]  # infrastructures this run destroyed (by id or by tag)


def destroy(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    *,
    keep_record: bool = False,
    notify: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> DestroyResult:
    """Destroy every infrastructure of the deployment (its id and whatever carries its tag) and forget
    it only once the IM lists none of them. Otherwise the record stays, marked ``destroying``, and the
    error names what is left: running destroy again converges.

    A create that was never answered may still land until the record's landing deadline: destroy waits
    that out, destroying whatever appears.
    """
    store.update(record.name, status=STATUS_DESTROYING)
    late_create_until = 0.0 if record.infrastructure_id else record.landing_deadline
    if late_create_until > clock():
        notify(
            f"{record.name}: its create was never answered and may still land for "
            f"{late_create_until - clock():.0f}s; destroying whatever appears until then"
        )
    give_up = max(clock() + DESTROY_VERIFY_S, late_create_until + POLL_S)
    destroyed: list[str] = []
    while True:
        asked_at = clock()
        scan = scan_tags(store, client)
        left = set(scan.carrying(record.deployment_tag))
        if record.infrastructure_id in scan:
            left.add(record.infrastructure_id)
        if not left and asked_at >= late_create_until:
            break
        for inf_id in sorted(left):
            if client.destroy(inf_id) and inf_id not in destroyed:
                destroyed.append(inf_id)
        if clock() >= give_up:
            raise RemoteError(
                f"{record.name}: the IM at {client.url} still lists infrastructure(s) "
                f"{', '.join(sorted(left))} after destroying them; the record is kept: run "
                f"`deployer destroy {record.name}` again"
            )
        sleep(POLL_S)
    if keep_record:
        store.update(record.name, status=STATUS_DESTROYED)
    else:
        store.delete(record.name)
    return DestroyResult(tuple(destroyed))
