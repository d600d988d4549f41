"""Install the elasticity daemon on a cluster's front end (``deployer daemon install``, and after ``create``).

Called by ``deployer.cli.daemon_cmds`` and, at the end of a successful ``create`` of an elastic spec, through
``install_after_create``. Builds the ``elastic_daemon`` role's variables from the deployment record: the
cluster name, its IM URL and infrastructure id, and the elasticity config embedded in its stored TOSCA
(``settings.spec`` of the daemon's ``--config`` file). The IM credentials (``endpoint_for_record``) go
into a 0600 auth file in a private temp dir that the role copies to the front end, so no secret is ever
in the extra vars, on a command line or in a log. Runs ``elastic_daemon.yml`` through the Ansible adapter.

With a token source (``DaemonTokenInstall``: a refresh token, an oidc-agent account or a rotated token
file on the front end) the shipped auth file carries a placeholder instead of today's access token, the
role copies the refresh token (and client secret) 0600 next to it, and the config's ``token:`` section
names the source, so the daemon refreshes its own token (``deployer.daemon.credentials``).

A ``--cloud local`` deployment has only simulated VMs (a made-up 10.0.0.1 front end): without an explicit
front end nothing is contacted and ``install_daemon`` returns None, so the caller prints the install hint.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deployer.adapters.ansible.inventory import SshTarget, build_inventory, secrets_of
from deployer.adapters.ansible.runner import PlaybookResult, ProgressEvent, run_playbook
from deployer.adapters.clouds.tokens import read_token_file
from deployer.adapters.im.auth import AuthEntry, write_auth_file
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.daemon.config import embedded_config
from deployer.daemon.credentials import (
    ACCESS_TOKEN_PLACEHOLDER,
    TokenSource,
    access_token_fields,
    with_access_token,
)
from deployer.errors import DeployerError, UserError
from deployer.lifecycle.credentials import Endpoint, endpoint_for_record
from deployer.lifecycle.edge import deployment_front
from deployer.paths import Paths

DAEMON_PLAYBOOK = "elastic_daemon.yml"
FRONT = "front"  # the front end's inventory name (explicit_front, front_from_outputs)

ReadOutputs = Callable[[str, str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class DaemonTokenInstall:
    """Where the installed daemon gets its access tokens. ``settings`` become the config's ``token:``
    section (no secrets: issuer, client id, oidc-agent account, a token file's path on the front end);
    the two files are on this machine and are copied 0600 to the front end by the role. Built by
    ``token_install``, which checks it."""

    source: str
    settings: Mapping[str, str] = field(default_factory=dict)
    refresh_token_file: Path | None = None
    client_secret_file: Path | None = None


@dataclass(frozen=True)
class DaemonInstallOptions:
    """How the daemon runs on the front end; ``extra_vars`` (other role variables) win over the rest."""

    run_mode: Literal["timer", "service"] = "timer"  # one pass per tick (--once), or long-running
    interval: str | None = None  # timer period, systemd syntax ("30s"); None: the role's default
    im_url: str | None = None  # the IM as the front end reaches it; None: the deployment's
    extra_vars: Mapping[str, Any] = field(default_factory=dict)
    host_key_checking: bool = True
    token: DaemonTokenInstall | None = None  # None: the credentials are shipped as they are today


def token_install(
    *,
    refresh_token_file: Path | None = None,
    issuer: str | None = None,
    token_endpoint: str | None = None,
    client_id: str | None = None,
    client_secret_file: Path | None = None,
    scope: str | None = None,
    oidc_agent_account: str | None = None,
    token_file: str | None = None,
) -> DaemonTokenInstall | None:
    """The token source that ``daemon install``'s options name, checked as the daemon will check it."""
    chosen = {
        "--refresh-token-file": refresh_token_file,
        "--oidc-agent-account": oidc_agent_account,
        "--token-file": token_file,
    }
    given = [flag for flag, value in chosen.items() if value]
    if len(given) > 1:
        raise UserError(f"{' and '.join(given)} are alternatives: give one token source")
    refresh_only = {"--issuer": issuer, "--token-endpoint": token_endpoint, "--client-id": client_id}
    refresh_only |= {"--client-secret-file": client_secret_file, "--scope": scope}
    stray = [flag for flag, value in refresh_only.items() if value]
    if stray and given != ["--refresh-token-file"]:
        raise UserError(f"{stray[0]} belongs to a refresh token: add --refresh-token-file FILE")
    if not given:
        return None
    if refresh_token_file is not None:
        source = TokenSource(
            source="refresh_token",
            refresh_token_file=refresh_token_file,  # checked here; the role names its copy on the front end
            issuer=issuer,
            token_endpoint=token_endpoint,
            client_id=client_id,
            scope=scope,
        )
    elif oidc_agent_account:
        source = TokenSource(source="oidc_agent", oidc_agent_account=oidc_agent_account)
    else:
        source = TokenSource(source="token_file", token_file=Path(token_file or ""))
    settings = {k: v for k, v in source.as_mapping().items() if k not in ("source", "refresh_token_file")}
    return DaemonTokenInstall(
        source.source,
        settings,
        refresh_token_file=refresh_token_file,
        client_secret_file=client_secret_file,
    )


def install_hint_command(cluster: str) -> str:
    return f"deployer daemon install-hint {cluster}"


def daemon_role_vars(
    record: DeploymentRecord, endpoint: Endpoint, options: DaemonInstallOptions
) -> dict[str, Any]:
    """The ``elastic_daemon`` variables of one deployment (no secrets: those travel in a file)."""
    role_vars: dict[str, Any] = {
        "elastic_daemon_cluster": record.name,
        "elastic_daemon_spec": embedded_config(record.tosca_redacted, record.name),
        "elastic_daemon_im_url": options.im_url or endpoint.im_url,
        "elastic_daemon_infrastructure_id": record.infrastructure_id or "",
        "elastic_daemon_run_mode": options.run_mode,
    }
    if options.interval:
        role_vars["elastic_daemon_interval"] = options.interval
    if options.token is not None:
        role_vars["elastic_daemon_token"] = {"source": options.token.source, **options.token.settings}
    role_vars.update(options.extra_vars)
    return role_vars


def shipped_entries(entries: Sequence[AuthEntry], token: DaemonTokenInstall | None) -> list[AuthEntry]:
    """The auth lines for the front end: with a token source, every access-token field holds a placeholder
    that the daemon fills with its own fresh token (today's token would expire within the hour)."""
    if token is None:
        return list(entries)
    if not any(access_token_fields(entry) for entry in entries):
        raise UserError(
            "the deployment's IM credentials use no access token (no 'token' on the InfrastructureManager or "
            "EGI line, no OIDC OpenStack line): drop the token-source options, they have nothing to refresh"
        )
    return with_access_token(entries, ACCESS_TOKEN_PLACEHOLDER)


def install_failure(result: PlaybookResult) -> str | None:
    """Why the install did not complete on the front end, or None when it did."""
    if result.returncode == 0 and result.host_ok(FRONT):
        return None
    failure = result.first_failure(FRONT) or next(iter(result.failures), None)
    if failure is not None:
        return failure.describe()
    said = f": {result.output_tail[-1]}" if result.output_tail else ""
    return f"ansible-playbook exited {result.returncode}{said}"


def install_daemon(
    paths: Paths,
    cluster_name: str,
    *,
    front: SshTarget | None = None,
    read_outputs: ReadOutputs | None = None,
    on_event: Callable[[ProgressEvent], None] | None = None,
    options: DaemonInstallOptions | None = None,
    token: str | None = None,
) -> PlaybookResult | None:
    """Install and start the daemon of ``cluster_name`` on its front end; None for a local-cloud cluster
    without an explicit ``front`` (nothing contacted: print ``install_hint_command`` instead).

    ``front`` defaults to the deployment's IM outputs, read with ``read_outputs(cloud, im_url, infra_id)``
    (default: an IM client with the deployment's credentials). Failed or unreachable front ends do not
    raise: they are in the result, as with ``run_playbook``.
    """
    options = options or DaemonInstallOptions()
    record = DeploymentStore(paths.state_db).get(cluster_name)
    if front is None and record.dummy_vms:
        return None
    endpoint = endpoint_for_record(paths, record, token=token)
    role_vars = daemon_role_vars(record, endpoint, options)  # a spec without elasticity fails here
    if front is None:
        front = deployment_front(paths, cluster_name, read_outputs)
    entries = shipped_entries(endpoint.entries, options.token)
    secrets = [value for entry in endpoint.entries for value in entry.secret_values()]
    file_vars: dict[str, str] = {}  # local secret files the role copies 0600 to the front end
    if options.token is not None:
        for var, path, what in (
            ("elastic_daemon_refresh_token_file", options.token.refresh_token_file, "refresh token"),
            ("elastic_daemon_client_secret_file", options.token.client_secret_file, "client secret"),
        ):
            if path is not None:
                secrets.append(read_token_file(path, what))  # checks it now, and masks it in the log
                file_vars[var] = str(path.resolve())
    run_dir = Path(tempfile.mkdtemp(prefix="dp-daemon-"))  # 0700
    try:
        auth_file = run_dir / "auth.dat"
        write_auth_file(auth_file, entries)  # 0600; the role copies it, never reads it into a var
        return run_playbook(
            DAEMON_PLAYBOOK,
            build_inventory(front, []),
            {**role_vars, **file_vars, "elastic_daemon_credentials_file": str(auth_file)},
            logs_dir=paths.logs_dir,
            on_event=on_event,
            host_key_checking=options.host_key_checking,
            secrets=[*secrets_of([front]), *secrets],
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def install_after_create(
    paths: Paths,
    cluster_name: str,
    *,
    notify: Callable[[str], None],
    on_event: Callable[[ProgressEvent], None] | None = None,
    token: str | None = None,
) -> PlaybookResult | None:
    """The last step of a successful ``create``: install the daemon when the cluster is elastic, its cloud is
    real and its outputs name a front end. Otherwise (or when the install fails) ``notify`` says how to run
    it; the deployment itself stands either way, so nothing is raised."""
    record = DeploymentStore(paths.state_db).get(cluster_name)
    try:
        embedded_config(record.tosca_redacted, cluster_name)
    except DeployerError:
        return None  # elasticity disabled: no daemon to run
    hint = install_hint_command(cluster_name)
    if record.dummy_vms:
        notify(
            f"simulated front end: the elasticity daemon is not installed; to run it: {hint}; "
            + _sandbox_note(paths, cluster_name)
        )
        return None
    retry = f"retry with `deployer daemon install {cluster_name}`, or run it yourself: {hint}"
    try:
        result = install_daemon(paths, cluster_name, on_event=on_event, token=token)
    except DeployerError as err:
        notify(f"the elasticity daemon is not installed ({err}); {retry}")
        return None
    failure = install_failure(result) if result is not None else None
    if result is not None and failure is not None:
        notify(f"the elasticity daemon install failed ({failure}; log: {result.log_path}); {retry}")
    return result


def _sandbox_note(paths: Paths, cluster_name: str) -> str:
    """Start the sandbox Kubernetes API of a simulated cluster and say where it is."""
    from deployer.sandbox.processes import start_sandbox

    try:
        url = start_sandbox(paths, cluster_name).url
    except DeployerError as err:
        return f"its sandbox Kubernetes API did not start ({err}); retry: deployer kubeconfig {cluster_name}"
    return (
        f"its sandbox Kubernetes API runs at {url} (`deployer kubeconfig {cluster_name}`), the daemon "
        f"scales it with `deployer daemon run --cluster {cluster_name}`"
    )
