"""`deployer edge ...` commands: join, list and remove edge (Raspberry Pi) boards with Ansible.

Thin layer over ``deployer.lifecycle.edge``: parses flags, prints per-host progress on stderr and the
summary table on stdout. Exit code 1 when any host failed (the others still went ahead).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deployer.cli import output
from deployer.cli.context import app_context
from deployer.cli.playbooks import (
    FRONT_HELP,
    INSECURE_HOST_KEYS_HELP,
    front_target,
    load_vars_file,
    playbook_progress,
)

if TYPE_CHECKING:
    from deployer.lifecycle.edge import EdgeRunReport

app = typer.Typer(no_args_is_help=True)

_VARS_HELP = "YAML file of extra Ansible variables for the roles (e.g. edge_node_registry_mirrors)."


def _report(report: EdgeRunReport, as_json: bool) -> None:
    rows = []
    for o in report.outcomes:
        s = o.summary
        status = "ok" if o.ok else ("unreachable" if o.failure and o.failure.unreachable else "failed")
        rows.append(
            {
                "host": o.host,
                "status": status,
                "ok": s.ok if s else 0,
                "changed": s.changed if s else 0,
                "failed": s.failed if s else 0,
                "unreachable": s.unreachable if s else 0,
                "node": o.node_name,
                "error": o.failure.describe() if o.failure else None,
            }
        )
    if as_json:
        output.print_json({"action": report.action, "hosts": rows, "log": str(report.log_path)})
    else:
        columns = ["host", "status", "ok", "changed", "failed", "unreachable"]
        output.table(columns, [[r[c] for c in columns] for r in rows], title=f"edge {report.action}")
    for o in report.failed:
        if o.failure is not None:
            output.error(o.failure.describe())
    output.info(f"full log: {report.log_path}")
    if report.failed:
        raise typer.Exit(1)


@app.command("add")
def add(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="Cluster (deployment) name."),
    hosts: list[str] = typer.Argument(..., help="Edge boards to join (addresses or SSH host names)."),
    user: str = typer.Option(
        "pi", "--user", help="SSH user on the boards: root, or a user with passwordless sudo."
    ),
    key: Path | None = typer.Option(None, "--key", help="SSH private key for the boards (and --front)."),
    group: str = typer.Option("edge", "--group", help="Node group: label deployer.io/group=NAME."),
    mac: list[str] = typer.Option([], "--mac", help="MAC for Wake-on-LAN, one per host in order."),
    label: list[str] = typer.Option([], "--label", help="Extra node label key=value (repeatable)."),
    taint: list[str] = typer.Option([], "--taint", help="Node taint key[=value]:Effect (repeatable)."),
    agent_url: str | None = typer.Option(
        None, "--agent-url", help="Kubernetes agent artifact URL (a mirror)."
    ),
    vars_file: Path | None = typer.Option(None, "--vars-file", help=_VARS_HELP),
    spec: Path | None = typer.Option(
        None,
        "--spec",
        help="Cluster spec: arch, labels, taints of its edge group --group (default: the deployed one's).",
    ),
    front: str | None = typer.Option(None, "--front", help=FRONT_HELP),
    front_user: str = typer.Option("root", "--front-user", help="SSH user on --front."),
    front_key: Path | None = typer.Option(None, "--front-key", help="SSH key for --front (default: --key)."),
    insecure_host_keys: bool = typer.Option(False, "--insecure-host-keys", help=INSECURE_HOST_KEYS_HELP),
    check: bool = typer.Option(False, "--check", help="Show what would change; change and record nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Join edge boards to a cluster: k3s agent or kubeadm join, whichever the front end runs."""
    from deployer.lifecycle import edge

    ac = app_context(ctx)
    options = edge.EdgeJoinOptions(
        user=user,
        key_file=key,
        group=group,
        macs=tuple(mac),
        labels=tuple(label),
        taints=tuple(taint),
        agent_url=agent_url,
        extra_vars=load_vars_file(vars_file),
        host_key_checking=not insecure_host_keys,
        check=check,
    )
    options = edge.with_spec_group(options, edge.cluster_spec(ac.paths, cluster, spec))
    edge.validate_join_options(hosts, options)
    target = front_target(ac.paths, cluster, front, front_user, front_key or key)
    report = edge.add_edge_hosts(
        ac.paths, cluster, hosts, target, options, on_event=playbook_progress(ac.verbose)
    )
    _report(report, as_json)


@app.command("list")
def list_hosts(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="Cluster (deployment) name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The edge boards joined to a cluster."""
    from dataclasses import asdict

    from deployer.lifecycle import edge

    records = edge.list_edge_hosts(app_context(ctx).paths, cluster)
    if as_json:
        output.print_json([asdict(r) for r in records])
        return
    output.table(
        ["host", "node", "group", "user", "mac"],
        [[r.host, r.node_name, r.node_group, r.ssh_user, r.mac or ""] for r in records],
        title=f"edge hosts of {cluster}",
    )


@app.command("remove")
def remove(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="Cluster (deployment) name."),
    host: str = typer.Argument(..., help="A joined edge board."),
    key: Path | None = typer.Option(
        None, "--key", help="SSH key for the board (default: the one used to join)."
    ),
    vars_file: Path | None = typer.Option(None, "--vars-file", help=_VARS_HELP),
    front: str | None = typer.Option(None, "--front", help=FRONT_HELP),
    front_user: str = typer.Option("root", "--front-user", help="SSH user on --front."),
    front_key: Path | None = typer.Option(None, "--front-key", help="SSH key for --front (default: --key)."),
    insecure_host_keys: bool = typer.Option(False, "--insecure-host-keys", help=INSECURE_HOST_KEYS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Drain and delete an edge node, reset the board (kubeadm) or stop its agent (k3s), and forget it."""
    from deployer.lifecycle import edge

    ac = app_context(ctx)
    extra_vars = load_vars_file(vars_file)
    target = front_target(ac.paths, cluster, front, front_user, front_key or key)
    report = edge.remove_edge_host(
        ac.paths,
        cluster,
        host,
        target,
        key_file=key,
        extra_vars=extra_vars,
        host_key_checking=not insecure_host_keys,
        on_event=playbook_progress(ac.verbose),
    )
    _report(report, as_json)
