"""Fault scenarios against the real IM, shared by tests/faults and bench/faults.py.

A scenario runs one life-cycle operation (create, scale, destroy) through ``FaultProxy`` with one fault
injected into one of its IM calls, then does what a user would do next (run the same command again,
with the fault gone), and finally audits the IM ITSELF, by id and by tag, through a direct client that
bypasses the proxy. The audit counts what must never happen: leaked infrastructures and VMs, duplicate
infrastructures, operations undone by another, and records lost while the IM still holds their
infrastructure.

Operations call the same life-cycle functions as the CLI (``deployer.lifecycle.deploy``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deployer.adapters.im.auth import AuthEntry
from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.errors import DeployerError, RemoteNotFound
from deployer.lifecycle.deploy import destroy, follow, recover_submission, scale, submit
from tests.faults.proxy import Fault, FaultProxy
from tests.im.templates import two_group_tosca

# Client timeouts for fault runs: short, so stalls and holds cost seconds. The landing window is
# READ_S + LANDING_MARGIN_S (the tests and the bench set DEPLOYER_IM_LANDING_MARGIN to it).
CONNECT_S = 2.0
READ_S = 2.5
LANDING_MARGIN_S = 2.0
WINDOW_S = READ_S + LANDING_MARGIN_S
# Fault durations: a stall outlasts the client's patience; a short hold lands late but inside the landing
# window (it must be adopted); a long hold lands after it (a duplicate that must be destroyed).
STALL_S = READ_S + 1.0
SHORT_HOLD_S = READ_S + 0.5
LONG_HOLD_S = WINDOW_S + 2.0
GROUPS = ("wa", "wb")
COUNTERS = (
    "leaked_infrastructures",
    "leaked_vms",
    "duplicate_infrastructures",
    "undone_operations",
    "lost_records",
)


@dataclass
class Lab:
    """One IM user, one deployer state store (one "machine"), and a fault proxy in front of the IM."""

    im_url: str
    entries: list[AuthEntry]
    proxy: FaultProxy
    state_dir: Path
    tags: dict[str, str] = field(default_factory=dict)  # deployment name -> tag

    @property
    def store(self) -> DeploymentStore:
        return DeploymentStore(self.state_dir / "state.db")

    def client(self) -> IMClient:
        return IMClient(
            self.proxy.url,
            self.entries,
            timeout=(CONNECT_S, READ_S),
            retries=3,
            backoff_base=0.05,
            backoff_cap=0.3,
        )

    def direct(self) -> IMClient:
        return IMClient(self.im_url, self.entries, retries=3, backoff_base=0.05)

    def new_name(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.tags[name] = f"dpl-fault-{secrets.token_hex(6)}"
        return name


def fault_for(kind: str, *, method: str | None, path: str | None, skip: int = 0, late: bool = False) -> Fault:
    """A one-shot fault of ``kind`` with the durations above (``late``: a hold past the landing window)."""
    seconds = {"stall": STALL_S, "hold": LONG_HOLD_S if late else SHORT_HOLD_S, "latency": 0.5}.get(kind, 0.0)
    status = 502 if kind == "html" else 500
    return Fault(kind, method=method, path=path, skip=skip, seconds=seconds, status=status)


# ---- operations (the CLI's use cases, through the proxy) ---------------------------------------------


def create(lab: Lab, name: str, *, wa: int = 1, wb: int = 1) -> None:
    tag = lab.tags[name]
    with lab.client() as client:
        record = submit(
            lab.store,
            client,
            name=name,
            cloud="local",
            tosca=two_group_tosca(tag, wa=wa, wb=wb),
            tosca_redacted=two_group_tosca(tag, wa=wa, wb=wb),
            deployment_tag=tag,
            spec_hash=f"spec-{name}",
            simulated=True,
        )
        assert record.infrastructure_id is not None
        follow(client, record.infrastructure_id, timeout=60, poll_interval=0.2)


def scale_group(lab: Lab, name: str, group: str, count: int) -> None:
    with lab.client() as client:
        record = recover_submission(lab.store, client, lab.store.get(name))
        scale(lab.store, client, record, group=group, count=count)


def destroy_deployment(lab: Lab, name: str) -> None:
    store = lab.store
    record = store.find(name)
    if record is None:
        return
    with lab.client() as client:
        destroy(store, client, record)


def attempt(operation: Callable[[], None]) -> str:
    """Run an operation that may fail: 'ok', or the name of the deployer error it raised. Any other
    exception is a defect (a traceback for the user) and propagates."""
    try:
        operation()
    except DeployerError as err:
        return type(err).__name__
    return "ok"


def converge(lab: Lab, operation: Callable[[], None], *, tries: int = 4) -> str:
    """What a user does after a failure: the same command again, the fault gone (bounded)."""
    lab.proxy.clear()
    outcome = "not run"
    for _ in range(tries):
        outcome = attempt(operation)
        if outcome == "ok":
            return outcome
        time.sleep(0.5)
    return outcome


# ---- the audit: the IM itself, by id and by tag ---------------------------------------------------------


def audit(lab: Lab, expected: dict[str, dict[str, int] | None]) -> Counter[str]:
    """Count violations. ``expected``: deployment name -> VMs per worker group, or None once destroyed."""
    found: Counter[str] = Counter()
    with lab.direct() as im:
        by_tag: dict[str, list[str]] = {}
        for inf_id in _settled_listing(im):
            try:
                by_tag.setdefault(im.infrastructure_tag(inf_id) or "", []).append(inf_id)
            except RemoteNotFound:
                continue
        ours = set(lab.tags.values())
        found["leaked_infrastructures"] += sum(len(ids) for tag, ids in by_tag.items() if tag not in ours)
        store = lab.store
        for name, want in expected.items():
            present = by_tag.get(lab.tags[name], [])
            record = store.find(name)
            if want is None:
                found["leaked_infrastructures"] += len(present)
                found["leaked_vms"] += sum(len(im.vm_ids(inf_id)) for inf_id in present)
                continue
            found["duplicate_infrastructures"] += max(0, len(present) - 1)
            if not present:
                found["undone_operations"] += 1  # the create did not stick
                continue
            if record is None or record.infrastructure_id not in present:
                found["lost_records"] += 1
                continue
            have = _vms_per_group(im, record.infrastructure_id)
            for group, count in want.items():
                found["leaked_vms"] += max(0, have.get(group, 0) - count)
                found["undone_operations"] += int(have.get(group, 0) < count)
    return found


def _settled_listing(im: IMClient) -> list[str]:
    """The IM's listing once it is stable (it persists deletions with retries, so it can lag a moment)."""
    previous = im.list_ids()
    for _ in range(20):
        time.sleep(0.3)
        current = im.list_ids()
        if current == previous:
            return current
        previous = current
    return previous


def _vms_per_group(im: IMClient, inf_id: str) -> Counter[str]:
    groups: Counter[str] = Counter()
    for vm_id in im.vm_ids(inf_id):
        try:
            groups[str(im.vm_info(inf_id, vm_id).get("id"))] += 1
        except RemoteNotFound:
            continue
    return groups


# ---- scenarios ------------------------------------------------------------------------------------------

# The call of each operation that changes something in the IM, as (method, path regex).
MUTATING_CALL = {
    "create": ("POST", r"^/infrastructures\?async"),
    "scale_up": ("POST", r"^/infrastructures/[^/?]+$"),
    "scale_down": ("DELETE", r"/vms/"),
    "destroy": ("DELETE", r"^/infrastructures/[^/]+$"),
}


@dataclass(frozen=True)
class Scenario:
    operation: str  # create | scale_up | scale_down | destroy | overlap
    kind: str  # fault kind
    call: int | None = None  # fault the N-th request of the operation; None: its mutating call
    late: bool = False  # a hold that lands after the landing window

    @property
    def key(self) -> str:
        where = "mutating" if self.call is None else f"call{self.call}"
        return f"{self.operation}/{self.kind}/{where}" + ("/late" if self.late else "")


def run(lab: Lab, scenario: Scenario) -> Counter[str]:
    """Run one scenario from a clean start to a clean end; the violations it found."""
    name = lab.new_name(scenario.operation.replace("_", "-"))
    if scenario.operation == "overlap":
        return _overlap(lab, name, scenario)
    if scenario.operation != "create":
        assert converge(lab, lambda: create(lab, name)) == "ok"
    fault = _fault(scenario)
    operation, want = {
        "create": (lambda: create(lab, name), {"wa": 1, "wb": 1}),
        "scale_up": (lambda: scale_group(lab, name, "wa", 3), {"wa": 3, "wb": 1}),
        "scale_down": (lambda: scale_group(lab, name, "wb", 0), {"wa": 1, "wb": 0}),
        "destroy": (lambda: destroy_deployment(lab, name), None),
    }[scenario.operation]
    lab.proxy.add(fault)
    attempt(operation)
    converge(lab, operation)
    if scenario.late:
        time.sleep(LONG_HOLD_S)  # let the held request land, then let a reconciling command see it
        converge(lab, lambda: _reconcile(lab, name))
    violations = audit(lab, {name: want})
    assert converge(lab, lambda: destroy_deployment(lab, name)) == "ok", "the clean-up destroy failed"
    return violations + audit(lab, {name: None})


def _fault(scenario: Scenario) -> Fault:
    if scenario.call is None:
        method, path = MUTATING_CALL[scenario.operation]
        return fault_for(scenario.kind, method=method, path=path, late=scenario.late)
    return fault_for(scenario.kind, method=None, path=None, skip=scenario.call, late=scenario.late)


def _reconcile(lab: Lab, name: str) -> None:
    """What ``deployer status`` does to the record: adopt, and destroy duplicates carrying its tag."""
    from deployer.lifecycle.identity import settle_duplicates

    store = lab.store
    with lab.client() as client:
        record = recover_submission(store, client, store.get(name))
        settle_duplicates(store, client, record)


def _overlap(lab: Lab, name: str, scenario: Scenario) -> Counter[str]:
    """Two machines (no shared lock) scale two groups of one deployment at once; the first one's add
    is faulted (``scenario.kind``). Neither may undo the other."""
    assert converge(lab, lambda: create(lab, name)) == "ok"
    other = Lab(lab.im_url, lab.entries, lab.proxy, lab.state_dir / "other-machine", lab.tags)
    other.state_dir.mkdir(exist_ok=True)
    other.store.add(lab.store.get(name))  # the other machine knows the deployment too
    lab.proxy.add(fault_for(scenario.kind, method="POST", path=r"^/infrastructures/[^/?]+$"))
    first = threading.Thread(target=lambda: attempt(lambda: scale_group(lab, name, "wa", 3)))
    first.start()
    time.sleep(0.2)
    attempt(lambda: scale_group(other, name, "wb", 2))
    first.join(60)
    converge(lab, lambda: scale_group(lab, name, "wa", 3))
    converge(other, lambda: scale_group(other, name, "wb", 2))
    violations = audit(lab, {name: {"wa": 3, "wb": 2}})
    other.store.delete(name)
    assert converge(lab, lambda: destroy_deployment(lab, name)) == "ok"
    return violations + audit(lab, {name: None})
