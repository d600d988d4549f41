"""``deployer kubeconfig NAME``: fetch the cluster's kubeconfig from its front end, or, for a local
(simulated) deployment, write the kubeconfig of its sandbox cluster (started if it is not running)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deployer.cli import output
from deployer.cli.context import app_context
from deployer.cli.playbooks import FRONT_HELP, INSECURE_HOST_KEYS_HELP, front_target, playbook_progress

if TYPE_CHECKING:
    from deployer.paths import Paths


def register(app: typer.Typer) -> None:
    app.command("kubeconfig")(kubeconfig)


def kubeconfig(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment (cluster) name."),
    dest: Path | None = typer.Option(
        None, "--output", "-o", help="Where to write it (default: DEPLOYER_HOME/kubeconfig/NAME.yaml)."
    ),
    src: str | None = typer.Option(None, "--src", help="Path of the kubeconfig on the front end."),
    front: str | None = typer.Option(None, "--front", help=FRONT_HELP),
    front_user: str = typer.Option("root", "--front-user", help="SSH user on the front end."),
    front_key: Path | None = typer.Option(None, "--front-key", help="SSH key for the front end."),
    insecure_host_keys: bool = typer.Option(False, "--insecure-host-keys", help=INSECURE_HOST_KEYS_HELP),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable result."),
) -> None:
    """Copy the cluster's kubeconfig from its front end (0600), pointed at the front end's address; for a
    local deployment, the kubeconfig of its sandbox Kubernetes API on 127.0.0.1."""
    from deployer.lifecycle.kubeconfig import default_destination, fetch_kubeconfig

    ac = app_context(ctx)
    if front is None and _simulated(ac.paths, name):
        from deployer.sandbox.processes import SandboxServer, start_sandbox

        url = start_sandbox(ac.paths, name).url
        target = dest or default_destination(ac.paths, name)
        written = SandboxServer(ac.paths, name).write_kubeconfig(url, target.expanduser().resolve())
        _report(name, written, json_output)
        return
    target = front_target(ac.paths, name, front, front_user, front_key)
    written = fetch_kubeconfig(
        ac.paths,
        name,
        target,
        dest=dest,
        src=src,
        host_key_checking=not insecure_host_keys,
        on_event=playbook_progress(ac.verbose),
    )
    _report(name, written, json_output)


def _simulated(paths: Paths, name: str) -> bool:
    from deployer.adapters.state.store import DeploymentStore

    record = DeploymentStore(paths.state_db).find(name)
    return record is not None and record.dummy_vms


def _report(name: str, written: Path, json_output: bool) -> None:
    if json_output:
        output.print_json({"cluster": name, "kubeconfig": str(written)})
    else:
        output.info(f"{name}: kubeconfig written to {written} (use: KUBECONFIG={written} kubectl get nodes)")
