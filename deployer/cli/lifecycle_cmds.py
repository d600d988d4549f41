"""Top-level life-cycle commands: create, list, status, outputs, logs, scale, reconfigure, destroy.

Thin wrappers over ``deployer.lifecycle.deploy`` (use cases) and ``deployer.lifecycle.credentials``
(which IM, which credentials): parse flags, print results (stdout, or ``--json``) and progress
(stderr: a live per-VM table on a terminal, one line per change otherwise). Heavy modules are imported
inside the commands so ``deployer --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deployer.cli.context import app_context
from deployer.cli.output import LiveArea, info, print_json, table, warn

if TYPE_CHECKING:
    from deployer.adapters.im.client import IMClient, InfraState
    from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
    from deployer.errors import RemoteError
    from deployer.paths import Paths

SPEC_ARG = typer.Argument(None, help="Cluster spec YAML. Omit to use defaults and flags only.")
NAME_ARG = typer.Argument(..., help="Deployment name (see `deployer list`).")
AUTH_FILE_OPT = typer.Option(
    None, "--auth-file", help="IM auth file (im_client format: 'id = X; type = T; key = value' lines)."
)
INSECURE_OPT = typer.Option(
    False, "--insecure", help="Do not verify the IM's TLS certificate (warns; create remembers it)."
)
TOKEN_OPT = typer.Option(
    None,
    "--token",
    help="OIDC access token for the IM and token-based clouds (else the profiles' token sources).",
    show_default=False,
)
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output on stdout.")
TIMEOUT_OPT = typer.Option(1800.0, "--timeout", min=1, help="Seconds to wait for 'configured'.")
WAIT_OPT = typer.Option(True, "--wait/--no-wait", help="Follow the deployment until it is configured.")
WAIT_LOCK_OPT = typer.Option(
    False,
    "--wait-lock",
    help="If another deployer command is changing this deployment, wait for it (else fail at once).",
)

SIMULATED_NOTE = "simulated VMs (local IM, Dummy connector): the addresses above are not reachable machines"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for command in (create, list_deployments, status, outputs, logs, scale, reconfigure, destroy):
        name = "list" if command is list_deployments else command.__name__
        app.command(name)(command)


# ---- plumbing -------------------------------------------------------------------------------------


def _store(paths: Paths) -> DeploymentStore:
    from deployer.lifecycle.create import open_store

    return open_store(paths)


def _client_for(
    paths: Paths,
    record: DeploymentRecord,
    auth_file: Path | None,
    insecure: bool,
    token: str | None = None,
) -> IMClient:
    from deployer.lifecycle.create import client_for_record

    _register_token(token)
    return client_for_record(paths, record, auth_file=auth_file, insecure=insecure, token=token, warn=warn)


@contextmanager
def _open_deployment(
    ctx: typer.Context,
    name: str,
    auth_file: Path | None,
    insecure: bool,
    token: str | None,
    *,
    command: str | None = None,
    wait_lock: bool = False,
    settle: bool = False,
) -> Iterator[tuple[DeploymentStore, IMClient, DeploymentRecord]]:
    """``deployer.lifecycle.session.open_deployment`` with the CLI's credentials and warnings."""
    from deployer.lifecycle.session import open_deployment

    paths = app_context(ctx).paths
    with open_deployment(
        paths,
        name,
        lambda record: _client_for(paths, record, auth_file, insecure, token),
        command=command,
        wait_lock=wait_lock,
        settle=settle,
        warn=warn,
    ) as opened:
        yield opened


def _register_token(token: str | None) -> None:
    """Mask ``--token`` in every log line and message from the start."""
    if token:
        from deployer.logs import register_secret

        register_secret(token)


def _resume_hint(name: str) -> str:
    return f"follow it with `deployer status {name} --watch`, or remove it with `deployer destroy {name}`"


class _Progress(LiveArea):
    """Per-VM progress on stderr: a live table on a terminal, one log line per change otherwise."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._state: InfraState | None = None
        self._unreachable = False
        super().__init__()

    def render(self) -> Any:
        from rich.table import Table

        state = self._state
        tbl = Table(title=f"{self._title}: {state.state if state else 'waiting for the IM'}", show_edge=False)
        tbl.add_column("VM")
        tbl.add_column("state")
        for vm_id, vm_state in sorted(
            (state.vm_states if state else {}).items(), key=lambda kv: kv[0].zfill(9)
        ):
            tbl.add_row(vm_id, vm_state)
        return tbl

    def change(self, old: InfraState | None, new: InfraState) -> None:
        self._unreachable = False
        self._state = new
        if self.live:
            self.refresh()
            return
        if old is None or old.state != new.state:
            info(f"{self._title}: {new.state}")
        before = old.vm_states if old else {}
        for vm_id in sorted(set(before) | set(new.vm_states), key=lambda v: v.zfill(9)):
            was, now = before.get(vm_id), new.vm_states.get(vm_id)
            if was != now:
                info(f"  VM {vm_id}: {was or 'new'} -> {now or 'removed'}")

    def unreachable(self, err: RemoteError) -> None:
        if not self._unreachable:
            warn(f"{err}; retrying until the deadline")
        self._unreachable = True


def _follow(client: IMClient, record: DeploymentRecord, store: DeploymentStore, timeout: float) -> InfraState:
    """Follow to configured with live progress, recording the last state seen whatever happens."""
    from deployer.errors import RemoteError
    from deployer.lifecycle.create import CreateHooks, follow_recorded

    try:
        with _Progress(record.name) as progress:
            hooks = CreateHooks(change=progress.change, unreachable=progress.unreachable)
            return follow_recorded(store, client, record, timeout, hooks)
    except KeyboardInterrupt:
        info(
            f"stopped following; infrastructure {record.infrastructure_id} keeps running: "
            + _resume_hint(record.name)
        )
        raise typer.Exit(130) from None
    except RemoteError as err:
        err.args = (f"{err}\n{_resume_hint(record.name)}",)
        raise


def _print_outputs(
    name: str, simulated: bool, values: dict[str, Any], *, as_json: bool, extra: dict[str, Any]
) -> None:
    if as_json:
        print_json({"name": name, **extra, "outputs": values, "simulated": simulated})
        return
    table(["output", "value"], [[key, _show(value)] for key, value in sorted(values.items())], title=name)
    if simulated:
        info(f"note: {SIMULATED_NOTE}")


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


# ---- commands -------------------------------------------------------------------------------------


def create(
    ctx: typer.Context,
    spec_file: Path | None = SPEC_ARG,
    cloud: str | None = typer.Option(
        None, "--cloud", "-c", help="Cloud (local, egi, a profile). Overrides the spec."
    ),
    name: str | None = typer.Option(
        None, "--name", "-n", help="Cluster name. Generated once and reused if absent."
    ),
    im_url: str | None = typer.Option(
        None, "--im-url", help="IM REST endpoint (default: the profile's, or local)."
    ),
    auth_file: Path | None = AUTH_FILE_OPT,
    wait: bool = WAIT_OPT,
    timeout: float = TIMEOUT_OPT,
    json_output: bool = JSON_OPT,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the TOSCA and the IM's estimate; create nothing."
    ),
    overrides: list[str] | None = typer.Option(None, "--set", help="Override a spec field: FIELD=VALUE."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=0, help="Initial VMs of the first group."
    ),
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
    wait_lock: bool = WAIT_LOCK_OPT,
) -> None:
    """Render, validate and submit a cluster to the IM, record it, and follow it to 'configured'.

    Running it again after an interruption resumes: the recorded deployment is adopted by its tag (or,
    when its create can no longer land and nothing carries the tag, submitted afresh), never duplicated.
    """
    from deployer.errors import RemoteError
    from deployer.lifecycle.create import CreateHooks, create_deployment

    paths = app_context(ctx).paths
    _register_token(token)
    submitted: list[DeploymentRecord] = []

    def on_submitted(record: DeploymentRecord, url: str) -> None:
        submitted.append(record)
        info(f"{record.name}: infrastructure {record.infrastructure_id} submitted to {url}")
        if wait:
            progress.append(_Progress(record.name).__enter__())

    progress: list[_Progress] = []  # the live per-VM view, once the cluster's name and id are known
    hooks = CreateHooks(
        warn=warn,
        submitted=on_submitted,
        change=lambda old, new: progress[-1].change(old, new),
        unreachable=lambda err: progress[-1].unreachable(err),
    )
    try:
        result = create_deployment(
            paths,
            spec_file,
            cloud=cloud,
            name=name,
            overrides=list(overrides or []),
            workers=workers,
            im_url=im_url,
            auth_file=auth_file,
            token=token,
            insecure=insecure,
            wait=wait,
            timeout=timeout,
            dry_run=dry_run,
            wait_lock=wait_lock,
            hooks=hooks,
        )
    except KeyboardInterrupt:
        if not submitted:
            raise
        record = submitted[-1]
        info(
            f"stopped following; infrastructure {record.infrastructure_id} keeps running: "
            + _resume_hint(record.name)
        )
        raise typer.Exit(130) from None
    except RemoteError as err:
        if submitted:
            err.args = (f"{err}\n{_resume_hint(submitted[-1].name)}",)
        raise
    finally:
        for view in progress:
            view.__exit__(None, None, None)
    if result.estimate is not None:
        if json_output:
            print_json({"name": result.name, "tosca": result.tosca_redacted, "estimate": result.estimate})
        else:
            typer.echo(result.tosca_redacted, nl=False)
            info(f"IM resource estimate: {_show(result.estimate)}")
        return
    if not wait:
        if json_output:
            print_json(
                {"name": result.name, "infrastructure_id": result.infrastructure_id, "status": result.state}
            )
        else:
            info(f"not waiting: {_resume_hint(result.name)}")
        return
    info(f"{result.name}: {result.state} ({result.vm_count} VMs)")
    _print_outputs(
        result.name,
        result.simulated,
        result.outputs,
        as_json=json_output,
        extra={"infrastructure_id": result.infrastructure_id, "state": result.state},
    )
    for service in result.services:
        info(f"{result.name}: OSCAR service {service.name} {service.action}")
    if result.elasticity:
        # Puts the elasticity daemon on the front end (real clouds), or says how to run it elsewhere.
        from deployer.cli.playbooks import playbook_progress
        from deployer.lifecycle.daemon_install import install_after_create

        verbose = app_context(ctx).verbose
        playbook_events = playbook_progress(verbose)
        install_after_create(paths, result.name, notify=warn, on_event=playbook_events, token=token)


def list_deployments(
    ctx: typer.Context,
    json_output: bool = JSON_OPT,
    insecure: bool = INSECURE_OPT,
) -> None:
    """Deployments known here, merged with what each IM reports (drift: gone in IM, unknown to us)."""
    from dataclasses import asdict, replace

    from deployer.errors import DeployerError, RemoteError
    from deployer.lifecycle.create import INSECURE_REMEMBERED
    from deployer.lifecycle.credentials import endpoint_for_record, local_auth_entries, local_im
    from deployer.lifecycle.deploy import list_with_drift
    from deployer.lifecycle.identity import TagScan, scan_tags

    paths = app_context(ctx).paths
    store = _store(paths)
    records = []
    clients: dict[str, IMClient] = {}
    for record in store.all():
        try:
            endpoint = endpoint_for_record(paths, record)
        except DeployerError as err:
            warn(f"{record.name}: {err}")
            records.append(record)
            continue
        records.append(replace(record, im_url=endpoint.im_url))
        if endpoint.insecure:
            warn(f"{record.name}: {INSECURE_REMEMBERED}")
        if endpoint.im_url not in clients:
            clients[endpoint.im_url] = endpoint.client(insecure=insecure)
    running = local_im(paths).status()
    if running is not None and running.url not in clients:
        from deployer.adapters.im.client import IMClient

        clients[running.url] = IMClient(running.url, local_auth_entries(paths))
    listings: dict[str, TagScan | RemoteError] = {}
    for url, client in clients.items():
        try:
            listings[url] = scan_tags(store, client)
        except RemoteError as err:
            listings[url] = err
        finally:
            client.close()
    rows = list_with_drift(records, listings)
    if json_output:
        print_json([asdict(row) for row in rows])
        return
    table(
        ["name", "cloud", "status", "infrastructure", "IM", "drift"],
        [[r.name, r.cloud, r.status, r.infrastructure_id, r.im_url, r.drift or ""] for r in rows],
    )


def status(
    ctx: typer.Context,
    name: str = NAME_ARG,
    watch: bool = typer.Option(False, "--watch", help="Follow it until configured (or failed)."),
    timeout: float = TIMEOUT_OPT,
    json_output: bool = JSON_OPT,
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
) -> None:
    """The deployment's state and its VMs (state, TOSCA node, address).

    It also reconciles the record with the IM: it adopts an infrastructure whose create was interrupted,
    destroys duplicates carrying the deployment's tag, and settles a change that was never answered.
    """
    from dataclasses import asdict

    from deployer.lifecycle.deploy import pending_change_note, vm_views

    with _open_deployment(ctx, name, auth_file, insecure, token, settle=True) as (store, client, record):
        if watch:
            _follow(client, record, store, timeout)
        state = client.state(record.infrastructure_id)
        note = pending_change_note(store, record)
        store.update(name, status=state.state)
        vms = vm_views(client, record.infrastructure_id)
    if json_output:
        print_json(
            {
                "name": name,
                "cloud": record.cloud,
                "infrastructure_id": record.infrastructure_id,
                "im_url": client.url,
                "state": state.state,
                "pending_change": note,
                "vms": [asdict(vm) for vm in vms],
            }
        )
        return
    info(f"{name}: {state.state} (infrastructure {record.infrastructure_id} on {client.url})")
    if note:
        warn(f"{name}: {note}")
    table(["VM", "state", "node", "address"], [[v.vm_id, v.state, v.node, v.ip] for v in vms])


def outputs(
    ctx: typer.Context,
    name: str = NAME_ARG,
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Print secret outputs instead of ***."),
    json_output: bool = JSON_OPT,
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
) -> None:
    """The cluster's outputs (Kubernetes API, OSCAR, MinIO endpoints, front-end IP)."""
    from deployer.lifecycle.deploy import mask_outputs

    with _open_deployment(ctx, name, auth_file, insecure, token) as (_, client, record):
        values = mask_outputs(client.outputs(record.infrastructure_id), show_secrets=show_secrets)
    _print_outputs(name, record.dummy_vms, values, as_json=json_output, extra={})


def logs(
    ctx: typer.Context,
    name: str = NAME_ARG,
    vm: str | None = typer.Option(None, "--vm", help="One VM's log (IM VM id, see `deployer status`)."),
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
) -> None:
    """The contextualization log of the deployment (or of one VM)."""
    with _open_deployment(ctx, name, auth_file, insecure, token) as (_, client, record):
        typer.echo(client.contmsg(record.infrastructure_id, vm))


def scale(
    ctx: typer.Context,
    name: str = NAME_ARG,
    group: str = typer.Option(..., "--group", "-g", help="Worker group to resize."),
    count: int = typer.Option(..., "--count", min=0, help="New number of VMs in the group."),
    remove: str | None = typer.Option(
        None, "--remove", help="Comma-separated IM VM ids to remove when lowering (default: the newest)."
    ),
    wait: bool = WAIT_OPT,
    timeout: float = TIMEOUT_OPT,
    json_output: bool = JSON_OPT,
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
    wait_lock: bool = WAIT_LOCK_OPT,
) -> None:
    """Add or remove worker VMs of one group through the IM, touching no other group (removals name
    their VMs). Exit 5 when the IM did not answer and the outcome is unknown."""
    from dataclasses import asdict

    from deployer.lifecycle.deploy import scale as scale_group

    chosen = [vm.strip() for vm in remove.split(",") if vm.strip()] if remove else None
    with _open_deployment(
        ctx, name, auth_file, insecure, token, command="scale", wait_lock=wait_lock, settle=True
    ) as (store, client, record):
        result = scale_group(store, client, record, group=group, count=count, remove=chosen, notify=warn)
        if result.added:
            info(f"{name}: group {group} adds VMs {', '.join(result.added)}")
        if result.removed:
            info(f"{name}: group {group} removes VMs {', '.join(result.removed)}")
        if not result.added and not result.removed:
            info(f"{name}: group {group} already has {count} VMs")
        if wait and (result.added or result.removed):
            _follow(client, record, store, timeout)
    if json_output:
        print_json({"name": name, **asdict(result)})


def reconfigure(
    ctx: typer.Context,
    name: str = NAME_ARG,
    wait: bool = WAIT_OPT,
    timeout: float = TIMEOUT_OPT,
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
    wait_lock: bool = WAIT_LOCK_OPT,
) -> None:
    """Run the IM's contextualization of the deployment again."""
    with _open_deployment(
        ctx, name, auth_file, insecure, token, command="reconfigure", wait_lock=wait_lock
    ) as (store, client, record):
        client.reconfigure(record.infrastructure_id)
        info(f"{name}: reconfiguration started")
        if wait:
            final = _follow(client, record, store, timeout)
            info(f"{name}: {final.state}")


def destroy(
    ctx: typer.Context,
    name: str = NAME_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    keep_record: bool = typer.Option(
        False, "--keep-record", help="Keep the local record (marked destroyed)."
    ),
    auth_file: Path | None = AUTH_FILE_OPT,
    insecure: bool = INSECURE_OPT,
    token: str | None = TOKEN_OPT,
    wait_lock: bool = WAIT_LOCK_OPT,
) -> None:
    """Destroy the deployment's infrastructure, and whatever else carries its tag. Already gone counts as
    success; the record goes only once the IM confirms that nothing of the deployment is left."""
    import sys

    from deployer.errors import UserError
    from deployer.lifecycle.create import destroy_deployment

    paths = app_context(ctx).paths
    store = _store(paths)
    record = store.find(name)
    if record is None:
        info(f"{name}: no such deployment here; nothing to destroy")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"destroying {name} needs confirmation: pass --yes")
        typer.confirm(
            f"Destroy {name} (infrastructure {record.infrastructure_id} on {record.im_url})?", abort=True
        )
    _register_token(token)
    result = destroy_deployment(
        paths,
        record,
        auth_file=auth_file,
        insecure=insecure,
        token=token,
        keep_record=keep_record,
        wait_lock=wait_lock,
        warn=warn,
    )
    if result.destroyed:
        info(f"{name}: destroyed {', '.join(result.destroyed)}; the IM lists nothing of it any more")
    else:
        info(f"{name}: was already gone from the IM; record cleaned up")
