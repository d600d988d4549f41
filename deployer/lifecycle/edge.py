"""Edge boards: join them to a cluster, list them, remove them (``deployer edge ...``).

Called by ``deployer.cli.edge_cmds``. Builds the inventory (the front end from the IM outputs of the
cluster's deployment, or an explicit address; the boards from the command line or the state store),
runs ``edge_join.yml`` / ``edge_leave.yml`` through the Ansible adapter (the playbooks join with k3s or
kubeadm, whichever the front end runs; docs/edge.md) and records per host what succeeded. The group's
arch, labels and taints come from the cluster's spec (``--spec`` or the deployed one) plus the flags.
A host that failed or was unreachable is reported and never recorded as joined; the others go ahead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.adapters.ansible.inventory import SshTarget, build_inventory, secrets_of
from deployer.adapters.ansible.runner import HostSummary, ProgressEvent, TaskFailure, run_playbook
from deployer.adapters.state.edge import EdgeHostRecord, EdgeHostStore
from deployer.errors import NotFoundError, UserError
from deployer.logs import register_secret
from deployer.paths import Paths, ensure_private_dir

if TYPE_CHECKING:
    from deployer.core.spec import ClusterSpec

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_TAINT_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_./]*(=[-A-Za-z0-9_.]*)?:(" + "|".join(TAINT_EFFECTS) + ")$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_./]*=[-A-Za-z0-9_.]*$")
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_GROUP_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
_FRONT_IP_OUTPUTS = ("front_public_ip", "front_private_ip")


@dataclass(frozen=True)
class EdgeJoinOptions:
    user: str = "pi"
    key_file: Path | None = None
    group: str = "edge"
    macs: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # "key=value"
    taints: tuple[str, ...] = ()  # "key=value:Effect"
    agent_url: str | None = None
    arch: str = "arm64"  # label kubernetes.io/arch, and which release binaries a kubeadm join installs
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    host_key_checking: bool = True
    check: bool = False  # Ansible check mode: report what would change, change and record nothing


@dataclass(frozen=True)
class EdgeHostOutcome:
    host: str
    ok: bool
    summary: HostSummary | None = None
    failure: TaskFailure | None = None
    node_name: str | None = None


@dataclass(frozen=True)
class EdgeRunReport:
    action: str  # join | join (check) | remove
    outcomes: list[EdgeHostOutcome]
    log_path: Path

    @property
    def failed(self) -> list[EdgeHostOutcome]:
        return [o for o in self.outcomes if not o.ok]


def validate_join_options(hosts: list[str], options: EdgeJoinOptions) -> None:
    """Reject bad flags before any SSH connection is made."""
    if not hosts:
        raise UserError("name at least one edge host")
    if len(set(hosts)) != len(hosts):
        raise UserError("an edge host is named twice")
    if not _GROUP_RE.match(options.group):
        raise UserError(f"--group {options.group!r}: use lowercase letters, digits and '-' (2-40 characters)")
    if options.macs and len(options.macs) != len(hosts):
        raise UserError(f"--mac: give one per host ({len(hosts)}), in host order")
    for mac in options.macs:
        if not _MAC_RE.match(mac):
            raise UserError(f"--mac {mac!r}: expected six hex pairs such as b8:27:eb:12:34:56")
    for label in options.labels:
        if not _LABEL_RE.match(label):
            raise UserError(f"--label {label!r}: expected key=value")
    for taint in options.taints:
        if not _TAINT_RE.match(taint):
            raise UserError(
                f"--taint {taint!r}: expected key[=value]:Effect, Effect one of {', '.join(TAINT_EFFECTS)}"
            )
    if options.key_file is not None and not options.key_file.is_file():
        raise UserError(f"--key {options.key_file}: no such file")


def cluster_spec(paths: Paths, cluster: str, spec_file: Path | None) -> ClusterSpec | None:
    """The spec whose edge groups describe the boards: ``--spec FILE``, else the one embedded in the
    deployed cluster's TOSCA; None for a cluster deployer did not create (flags only)."""
    from deployer.core.spec import load_spec

    if spec_file is not None:
        return load_spec(spec_file)
    from deployer.adapters.state.store import DeploymentStore
    from deployer.daemon.config import spec_from_tosca

    record = DeploymentStore(paths.state_db).find(cluster)
    if record is None:
        return None
    try:
        return spec_from_tosca(record.tosca_redacted, cluster)
    except UserError:  # created without elasticity settings: no edge groups to read
        return None


def with_spec_group(options: EdgeJoinOptions, spec: ClusterSpec | None) -> EdgeJoinOptions:
    """``options`` with the architecture, labels and taints of the spec's edge group ``options.group``.

    The flags add to the spec's labels and taints (a flag's label wins over the spec's). A spec without
    edge groups changes nothing; one whose edge groups do not include the group is an error.
    """
    if spec is None or not spec.edge_groups:
        return options
    group = next((g for g in spec.edge_groups if g.name == options.group), None)
    if group is None:
        names = ", ".join(g.name for g in spec.edge_groups)
        raise UserError(f"--group {options.group!r}: the spec's edge_groups are {names}; pick one of them")
    flag_labels = dict(label.split("=", 1) for label in options.labels)
    labels = {**group.labels, **flag_labels}
    taints = [f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in group.taints]
    taints += [t for t in options.taints if t not in taints]
    return replace(
        options,
        arch=group.arch,
        labels=tuple(f"{key}={value}" for key, value in labels.items()),
        taints=tuple(taints),
    )


def explicit_front(address: str, *, user: str = "root", key_file: Path | None = None) -> SshTarget:
    """The front end given on the command line (standalone clusters, labs, tests)."""
    return SshTarget(name="front", address=address, user=user, key_file=key_file)


def front_from_outputs(outputs: Mapping[str, Any], key_dir: Path, cluster: str) -> SshTarget:
    """The front end from a deployment's IM outputs (``front_*_ip``, ``front_credentials``).

    A private key in the credentials is written to ``key_dir/<cluster>-front.key`` (0600) for SSH.
    """
    address = next((str(outputs[k]) for k in _FRONT_IP_OUTPUTS if outputs.get(k)), None)
    if not address:
        raise UserError(f"cluster {cluster!r} has no front-end IP in its outputs yet; is it configured?")
    creds = outputs.get("front_credentials") or {}
    if not isinstance(creds, Mapping):
        raise UserError(f"cluster {cluster!r}: unexpected front_credentials output")
    user = str(creds.get("user") or "root")
    token, token_type = creds.get("token"), str(creds.get("token_type") or "")
    if not token:
        return SshTarget(name="front", address=address, user=user)
    register_secret(str(token))
    if token_type == "password":  # noqa: S105 - a credential kind, not a credential
        return SshTarget(name="front", address=address, user=user, password=str(token))
    key_file = ensure_private_dir(key_dir) / f"{cluster}-front.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(token).rstrip("\n") + "\n")
    return SshTarget(name="front", address=address, user=user, key_file=key_file)


def deployment_front(
    paths: Paths,
    cluster: str,
    read_outputs: Callable[[str, str, str], Mapping[str, Any]] | None = None,
) -> SshTarget:
    """The front end of a deployed cluster: its record in the state store, then its IM outputs.

    ``read_outputs(cloud, im_url, infrastructure_id)`` asks the IM; by default with the deployment's own
    credentials (the same ones ``status`` and ``destroy`` use).
    """
    from deployer.adapters.state.store import DeploymentStore

    record = DeploymentStore(paths.state_db).get(cluster)
    if record.dummy_vms:
        # Dummy VMs report a made-up address (10.0.0.1) that must never be dialled.
        raise UserError(f"cluster {cluster!r} runs on the local Dummy cloud: no real front end; pass --front")
    if not record.infrastructure_id:
        raise UserError(f"cluster {cluster!r} has no infrastructure yet (status {record.status})")
    if read_outputs is None:
        from deployer.lifecycle.credentials import endpoint_for_record

        with endpoint_for_record(paths, record).client() as client:
            outputs = client.outputs(record.infrastructure_id)
    else:
        outputs = read_outputs(record.cloud, record.im_url, record.infrastructure_id)
    return front_from_outputs(outputs, paths.state_dir / "keys", cluster)


def _outcomes(hosts: list[str], result: Any, front: SshTarget) -> list[EdgeHostOutcome]:
    front_failure = result.first_failure(front.name)
    outcomes = []
    for host in hosts:
        failure = result.first_failure(host)
        if front_failure is not None:  # the root cause for every board
            failure = TaskFailure(
                host, front_failure.task, f"front end {front.address}: {front_failure.message}"
            )
        if failure is None and host not in result.hosts:
            said = f": {result.output_tail[-1]}" if result.output_tail else ""
            failure = TaskFailure(host, "(not run)", f"ansible-playbook exited {result.returncode}{said}")
        ok = failure is None and result.host_ok(host)
        node = result.facts.get(host, {}).get("edge_node_name_for_deployer")
        outcomes.append(EdgeHostOutcome(host, ok, result.hosts.get(host), failure, node))
    return outcomes


def add_edge_hosts(
    paths: Paths,
    cluster: str,
    hosts: list[str],
    front: SshTarget,
    options: EdgeJoinOptions,
    *,
    on_event: Callable[[ProgressEvent], None] | None = None,
) -> EdgeRunReport:
    """Join ``hosts`` to ``cluster``; record the ones that joined. Safe to re-run (idempotent roles)."""
    validate_join_options(hosts, options)
    macs = dict(zip(hosts, options.macs, strict=False))
    edge = [SshTarget(name=h, address=h, user=options.user, key_file=options.key_file) for h in hosts]
    extra_vars: dict[str, Any] = {
        "edge_node_group": options.group,
        "edge_node_arch": options.arch,
        "edge_node_labels": dict(label.split("=", 1) for label in options.labels),
        "edge_node_taints": list(options.taints),
    }
    if options.agent_url:
        extra_vars["edge_node_agent_url"] = options.agent_url
    extra_vars.update(options.extra_vars)
    result = run_playbook(
        "edge_join.yml",
        build_inventory(front, edge),
        extra_vars,
        logs_dir=paths.logs_dir,
        on_event=on_event,
        host_key_checking=options.host_key_checking,
        check=options.check,
        secrets=secrets_of([front, *edge]),
    )
    outcomes = _outcomes(hosts, result, front)
    store = EdgeHostStore(paths.state_db)
    for outcome in outcomes:
        if outcome.ok and not options.check:
            store.record_joined(
                EdgeHostRecord(
                    cluster=cluster,
                    host=outcome.host,
                    node_name=outcome.node_name or outcome.host,
                    node_group=options.group,
                    ssh_user=options.user,
                    ssh_key=str(options.key_file) if options.key_file else None,
                    mac=macs.get(outcome.host),
                )
            )
    return EdgeRunReport("join (check)" if options.check else "join", outcomes, result.log_path)


def list_edge_hosts(paths: Paths, cluster: str) -> list[EdgeHostRecord]:
    return EdgeHostStore(paths.state_db).list(cluster)


def remove_edge_host(
    paths: Paths,
    cluster: str,
    host: str,
    front: SshTarget,
    *,
    key_file: Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    host_key_checking: bool = True,
    on_event: Callable[[ProgressEvent], None] | None = None,
) -> EdgeRunReport:
    """Drain and delete the node on the front end, then reset the board (kubeadm) or remove its agent (k3s);
    forget it when done."""
    store = EdgeHostStore(paths.state_db)
    record = store.get(cluster, host)
    if record is None:
        raise NotFoundError(
            f"{host} is not a joined edge host of {cluster!r}; see `deployer edge list {cluster}`"
        )
    key = key_file or (Path(record.ssh_key) if record.ssh_key else None)
    target = SshTarget(
        name=host,
        address=host,
        user=record.ssh_user,
        key_file=key,
        host_vars={"edge_node_name": record.node_name},
    )
    result = run_playbook(
        "edge_leave.yml",
        build_inventory(front, [target]),
        dict(extra_vars or {}),
        logs_dir=paths.logs_dir,
        on_event=on_event,
        host_key_checking=host_key_checking,
        secrets=secrets_of([front, target]),
    )
    outcomes = _outcomes([host], result, front)
    if outcomes[0].ok:
        store.remove(cluster, host)
    return EdgeRunReport("remove", outcomes, result.log_path)
