"""OSCAR services of a cluster: load FDL files, find the cluster's OSCAR, apply (create or update).

Called by ``deployer oscar ...`` (``deployer.cli.oscar_cmds``) and by ``deployer create`` for the FDL
files a spec lists (``oscar.fdl_files``, applied once the cluster is configured). Reads files and talks
to OSCAR through ``deployer.adapters.oscar.client``; the FDL rules live in ``deployer.core.fdl``.

Where a cluster's OSCAR is: its API base is the deployment's ``oscar_endpoint`` output (read from the
IM), and the credentials are user ``oscar`` with the password deployer generated (or took from the
spec) and keeps 0600 in the secret store; the IM's outputs never carry it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.adapters.oscar.client import Credentials, OscarClient
from deployer.core.fdl import Fdl, FdlService, parse_fdl, secret_values, service_payload
from deployer.core.spec import ClusterSpec, read_yaml_file
from deployer.errors import DeployerError, TimeoutExpired, TransientError, UserError
from deployer.logs import register_secret
from deployer.paths import Paths

OSCAR_USER = "oscar"  # the user tosca.nodes.indigo.OSCAR creates; the password is ours
OSCAR_ENDPOINT_OUTPUT = "oscar_endpoint"
PASSWORD_SECRET = "oscar.oscar_password"  # noqa: S105 - a key of the secret store
READY_TIMEOUT_S = 300.0  # how long create waits for a just-configured OSCAR to answer


@dataclass(frozen=True)
class OscarTarget:
    url: str
    credentials: Credentials
    verify: bool = True

    def client(self) -> OscarClient:
        return OscarClient(self.url, self.credentials, verify=self.verify)


@dataclass(frozen=True)
class LoadedFdl:
    """A validated FDL and its services' script contents (keyed by the path as written)."""

    source: Path
    fdl: Fdl
    scripts: Mapping[str, str]

    def payloads(self, cluster_id: str | None = None) -> list[dict[str, Any]]:
        try:
            chosen = self.fdl.for_cluster(cluster_id)
        except UserError as err:
            raise UserError(f"{self.source}: {err}; pass --fdl-cluster ID") from None
        return [service_payload(s, self.scripts[s.script_path]) for s in chosen]


@dataclass(frozen=True)
class Applied:
    name: str
    action: str  # "created" | "updated"
    warning: str | None = None


# ---- FDL files -------------------------------------------------------------------------------------


def load_fdl(path: Path) -> LoadedFdl:
    """Read, validate and resolve an FDL file: every script is read from next to the FDL."""
    data = read_yaml_file(path, "FDL")
    fdl = parse_fdl(data, str(path))
    for value in secret_values(fdl):
        register_secret(value)
    scripts = {s.script_path: _read_script(path, s) for s in fdl.services}
    return LoadedFdl(path, fdl, scripts)


def _read_script(fdl_path: Path, service: FdlService) -> str:
    script = fdl_path.parent / service.script_path
    try:
        return script.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(
            f"{fdl_path}: {service.where}.script: no file {script} (the path is relative to the FDL's "
            "folder); fix the path"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise UserError(f"{fdl_path}: {service.where}.script: cannot read {script} ({reason})") from None


def spec_fdl_paths(spec: ClusterSpec, spec_file: Path | None) -> list[Path]:
    """The spec's ``oscar.fdl_files``, relative to the spec file's folder (or the working directory)."""
    base = spec_file.resolve().parent if spec_file is not None else Path.cwd()
    return [(base / item).resolve() for item in spec.oscar.fdl_files]


def load_spec_fdls(spec: ClusterSpec, spec_file: Path | None) -> list[LoadedFdl]:
    """Validate the spec's FDL files up front, so a bad one stops ``create`` before anything is spent."""
    loaded = [load_fdl(path) for path in spec_fdl_paths(spec, spec_file)]
    for item in loaded:
        item.payloads(_cluster_choice(item, spec.name))
    return loaded


def _cluster_choice(item: LoadedFdl, cluster_name: str | None) -> str | None:
    """An FDL listed in a spec applies its only cluster id, or the one named like the cluster."""
    ids = item.fdl.cluster_ids()
    return cluster_name if len(ids) > 1 and cluster_name in ids else None


# ---- where the OSCAR is -----------------------------------------------------------------------------


def stored_credentials(paths: Paths, cluster: str) -> Credentials:
    from deployer.adapters.state.secrets import SecretStore

    password = SecretStore(paths).load(cluster).get(PASSWORD_SECRET)
    if not password:
        raise UserError(
            f"no OSCAR password is kept for cluster {cluster!r} (it was not created from this "
            "DEPLOYER_HOME); pass --endpoint URL --user USER --password-env VAR instead"
        )
    return Credentials(user=OSCAR_USER, password=password)


def endpoint_from_outputs(cluster: str, outputs: Mapping[str, Any], *, simulated: bool) -> str:
    url = outputs.get(OSCAR_ENDPOINT_OUTPUT)
    if not url:
        raise UserError(
            f"cluster {cluster!r} has no {OSCAR_ENDPOINT_OUTPUT} output (oscar.enabled is false, or the "
            "IM has not resolved it yet); pass --endpoint URL"
        )
    if simulated:
        raise UserError(
            f"cluster {cluster!r} has simulated VMs: its OSCAR endpoint {url} is not a real machine; "
            "pass --endpoint URL to use an OSCAR you run yourself"
        )
    return str(url)


def cluster_target(
    paths: Paths,
    cluster: str,
    *,
    endpoint: str | None = None,
    verify: bool = True,
    outputs: Callable[[], Mapping[str, Any]] | None = None,
    token: str | None = None,
) -> OscarTarget:
    """The OSCAR of a deployment: ``endpoint`` overrides the IM's output, which ``outputs`` reads
    (default: ask the deployment's IM)."""
    from deployer.adapters.state.store import DeploymentStore

    record = DeploymentStore(paths.state_db).get(cluster)
    credentials = stored_credentials(paths, cluster)
    if endpoint is None:
        values = outputs() if outputs is not None else _im_outputs(paths, record, token)
        endpoint = endpoint_from_outputs(cluster, values, simulated=record.dummy_vms)
    return OscarTarget(endpoint, credentials, verify)


def _im_outputs(paths: Paths, record: Any, token: str | None) -> Mapping[str, Any]:
    from deployer.adapters.state.store import DeploymentStore
    from deployer.lifecycle.credentials import endpoint_for_record
    from deployer.lifecycle.deploy import recover_submission

    with endpoint_for_record(paths, record, token=token).client() as im:
        record = recover_submission(DeploymentStore(paths.state_db), im, record)
        return im.outputs(record.infrastructure_id)


# ---- apply -------------------------------------------------------------------------------------------


def apply_services(client: OscarClient, payloads: Sequence[dict[str, Any]]) -> list[Applied]:
    """Create or update each service: GET it, then PUT (204) if OSCAR has it, else POST (201)."""
    applied = []
    for payload in payloads:
        name = str(payload["name"])
        if client.get_service(name) is None:
            client.create_service(payload)
            applied.append(Applied(name, "created"))
        else:
            applied.append(Applied(name, "updated", client.update_service(payload)))
    return applied


def wait_until_ready(
    client: OscarClient,
    *,
    timeout: float = READY_TIMEOUT_S,
    poll: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """A just-configured cluster's OSCAR may still be starting: wait (bounded) until it lists services."""
    deadline = clock() + timeout
    while True:
        try:
            client.list_services()
            return
        except (TransientError, TimeoutExpired):
            if clock() >= deadline:
                raise
        sleep(min(poll, max(0.0, deadline - clock())))


def apply_spec_fdls(
    target: OscarTarget, cluster: str, loaded: Sequence[LoadedFdl], *, ready_timeout: float = READY_TIMEOUT_S
) -> list[Applied]:
    """``create``'s last step: apply the spec's FDL files to the configured cluster's OSCAR."""
    applied: list[Applied] = []
    with target.client() as client:
        wait_until_ready(client, timeout=ready_timeout)
        for item in loaded:
            applied += apply_services(client, item.payloads(_cluster_choice(item, cluster)))
    return applied


def apply_after_create(
    paths: Paths,
    cluster: str,
    outputs: Mapping[str, Any],
    loaded: Sequence[LoadedFdl],
    *,
    simulated: bool,
    notify: Callable[[str], None],
) -> list[Applied]:
    """The hook at the end of ``deployer create``: apply ``loaded`` (from ``load_spec_fdls``) to the new
    cluster. Simulated VMs have no OSCAR to dial, so their FDLs stay validated only."""
    if not loaded:
        return []
    files = ", ".join(str(item.source) for item in loaded)
    if simulated:
        notify(f"{cluster}: simulated VMs run no OSCAR; {files} validated but not applied")
        return []
    target = OscarTarget(
        endpoint_from_outputs(cluster, outputs, simulated=False), stored_credentials(paths, cluster)
    )
    try:
        return apply_spec_fdls(target, cluster, loaded)
    except DeployerError as err:
        hint = f"the cluster is configured: apply later with `deployer oscar apply FDL --cluster {cluster}`"
        err.args = (f"{err}; {hint}",)
        raise
