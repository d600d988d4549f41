"""What the dashboard's pages show, gathered from the state store, the IM and the daemon's history.

Reads only: changes go through ``deployer.ui.actions``. The IM is asked with short timeouts and a single
retry, so a slow or unreachable IM turns into a one-line notice on the page instead of a hung browser
tab. Secret outputs leave this module masked; ``reveal_output`` hands out one value on request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.edge import EdgeHostRecord, EdgeHostStore
from deployer.adapters.state.history import Decision, ElasticityHistory, RoundSample
from deployer.adapters.state.nodes import NodeStateStore
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.core.elasticity.model import NodeRecord
from deployer.errors import DeployerError, NotFoundError
from deployer.lifecycle.credentials import endpoint_for_record
from deployer.lifecycle.deploy import VMView, is_secret_output, mask_outputs, tail, vm_views
from deployer.logs import redact
from deployer.paths import Paths

# Reads give up quickly, without retrying: the page says the IM is slow rather than hang (the CLI waits
# longer). Seconds to connect; the read timeout is the caller's (``deployer ui --im-timeout``).
CONNECT_TIMEOUT = 3.0
DEFAULT_READ_TIMEOUT = 10.0
LOG_LINES = 200
GROUP_TAG = "deployer.io/group"
# Phases in which a node costs (booting, running, draining): what the nodes-over-time chart counts.
ACTIVE_PHASES = frozenset({"powering_on", "idle", "used", "draining", "powering_off"})


@dataclass(frozen=True)
class GroupView:
    name: str  # the worker group (what ``deployer scale --group`` takes)
    node: str  # its TOSCA node
    vms: tuple[VMView, ...]
    min_instances: int | None
    max_instances: int | None


@dataclass(frozen=True)
class OutputView:
    key: str
    shown: str  # the value, or the mask for a secret
    secret: bool


@dataclass
class DeploymentView:
    record: DeploymentRecord
    state: str | None = None
    vms: list[VMView] = field(default_factory=list)
    groups: list[GroupView] = field(default_factory=list)
    outputs: list[OutputView] = field(default_factory=list)
    log: str = ""
    edge_hosts: list[EdgeHostRecord] = field(default_factory=list)
    problem: str | None = None  # why the IM part is missing (unreachable, refused)


@dataclass
class ElasticityView:
    name: str
    nodes: list[NodeRecord]
    backoff_until: dict[str, float]
    samples: list[RoundSample]
    decisions: list[Decision]
    groups: list[str]


@dataclass(frozen=True)
class TeamRow:
    klass: str  # the class prefix
    team: int
    deployment: str
    membership: str  # planned | creating | ready | failed
    state: str | None  # the deployment's last recorded state; None when it has no record
    problem: str | None


def deployments(paths: Paths) -> list[DeploymentRecord]:
    return DeploymentStore(paths.state_db).all()


@contextmanager
def _read_client(paths: Paths, record: DeploymentRecord, read_timeout: float) -> Iterator[IMClient]:
    endpoint = endpoint_for_record(paths, record)
    with IMClient(
        endpoint.im_url,
        endpoint.entries,
        verify=not endpoint.insecure,
        timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout),
        retries=1,
    ) as client:
        yield client


def deployment(paths: Paths, name: str, *, read_timeout: float = DEFAULT_READ_TIMEOUT) -> DeploymentView:
    """The record, and what the IM says now; the IM's failure is reported in ``problem``."""
    store = DeploymentStore(paths.state_db)
    view = DeploymentView(record=store.get(name))
    view.edge_hosts = EdgeHostStore(paths.state_db).list(name)
    record = view.record
    if not record.infrastructure_id:
        view.problem = f"no infrastructure yet (status {record.status})"
        return view
    try:
        with _read_client(paths, record, read_timeout) as client:
            state = client.state(record.infrastructure_id)
            view.state = state.state
            view.vms = vm_views(client, record.infrastructure_id)
            raw_outputs = client.outputs(record.infrastructure_id)
            view.log = redact(tail(client.contmsg(record.infrastructure_id), LOG_LINES))
    except DeployerError as err:
        view.problem = str(err)
        return view
    if state.state != record.status:
        store.update(name, status=state.state)
    view.outputs = _outputs(raw_outputs)
    view.groups = _groups(record.tosca_redacted, view.vms)
    return view


def reveal_output(paths: Paths, name: str, key: str, *, read_timeout: float = DEFAULT_READ_TIMEOUT) -> str:
    """One output's real value, for the page's reveal button."""
    record = DeploymentStore(paths.state_db).get(name)
    if not record.infrastructure_id:
        raise NotFoundError(f"{name} has no infrastructure yet")
    with _read_client(paths, record, read_timeout) as client:
        values = client.outputs(record.infrastructure_id)
    if key not in values:
        raise NotFoundError(f"{name} has no output {key!r}")
    return _text(values[key])


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def _outputs(values: dict[str, Any]) -> list[OutputView]:
    masked = mask_outputs(values, show_secrets=False)
    return [
        OutputView(key, _text(masked[key]), is_secret_output(key) and values[key] not in (None, ""))
        for key in sorted(values)
    ]


def _groups(tosca: str, vms: list[VMView]) -> list[GroupView]:
    """The scalable nodes of the deployment's TOSCA, with the VMs the IM reports for each."""
    try:
        document = yaml.safe_load(tosca) or {}
        nodes = (document.get("topology_template") or {}).get("node_templates") or {}
    except yaml.YAMLError:
        return []
    groups = []
    for node, template in sorted(nodes.items()):
        template = template or {}
        scalable = ((template.get("capabilities") or {}).get("scalable") or {}).get("properties")
        if scalable is None:
            continue
        tags = (template.get("properties") or {}).get("tags") or {}
        groups.append(
            GroupView(
                name=str(tags.get(GROUP_TAG) or node),
                node=node,
                vms=tuple(vm for vm in vms if vm.node == node),
                min_instances=scalable.get("min_instances"),
                max_instances=scalable.get("max_instances"),
            )
        )
    return groups


def elasticity(paths: Paths, name: str, *, decisions: int = 50) -> ElasticityView:
    """The daemon's memory of the cluster (nodes, back-offs) and its recorded rounds and decisions."""
    DeploymentStore(paths.state_db).get(name)
    state = NodeStateStore(paths.state_db, name).load()
    history = ElasticityHistory(paths.state_db, name)
    samples = history.samples()
    groups = sorted({r.group for r in state.records.values()} | {g for s in samples for g in s.nodes})
    return ElasticityView(
        name=name,
        nodes=sorted(state.records.values(), key=lambda r: (r.group, r.name)),
        backoff_until=dict(state.group_backoff_until),
        samples=samples,
        decisions=history.decisions(decisions),
        groups=groups,
    )


def active_nodes(sample: RoundSample, group: str) -> int:
    return sum(count for phase, count in sample.nodes.get(group, {}).items() if phase in ACTIVE_PHASES)


def class_roster(paths: Paths) -> list[TeamRow]:
    """Every team of every class with its membership and its deployment's last state."""
    from deployer.adapters.state.classes import ClassStore

    classes = ClassStore(paths.state_db)
    deployments = DeploymentStore(paths.state_db)
    rows = []
    for klass in classes.all():
        for member in classes.members(klass.prefix):
            record = deployments.find(member.name)
            rows.append(
                TeamRow(
                    klass.prefix,
                    member.team,
                    member.name,
                    member.status,
                    record.status if record else None,
                    member.error,
                )
            )
    return rows
