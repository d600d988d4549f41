"""`deployer daemon ...`: run the elasticity daemon (loop, ``--once``, ``--dry-run``), explain its current
plan, install it on a cluster's front end (Ansible role ``elastic_daemon``), and show how to run it from
cron, a systemd timer or Kubernetes. Heavy imports stay in the commands."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deployer.cli import output
from deployer.cli.context import app_context

if TYPE_CHECKING:
    from deployer.clock import ScaledClock
    from deployer.daemon.credentials import DaemonCredentials
    from deployer.daemon.runner import DaemonSources
    from deployer.paths import Paths

app = typer.Typer(no_args_is_help=True)

_SPEC = typer.Option(
    None, "--spec", help="Cluster spec file (default: the settings the deployment was made with)."
)
_IM_URL = typer.Option(None, "--im-url", help="IM endpoint (default: the deployment's).")
_AUTH = typer.Option(None, "--auth-file", help="IM auth file (default: the deployment's credentials).")
_INFRA = typer.Option(None, "--infra-id", help="IM infrastructure id (default: the deployment's).")
_KUBECONFIG = typer.Option(None, "--kubeconfig", help="Kubeconfig (default: in-cluster, then $KUBECONFIG).")
_CONTEXT = typer.Option(None, "--context", help="Kubeconfig context.")
_INSECURE = typer.Option(False, "--insecure", help="Do not verify the IM's TLS certificate.")
_SSH_KEY = typer.Option(None, "--ssh-key", help="Private key for shutting edge boards down over SSH.")
_CONFIG = typer.Option(
    None, "--config", help="Daemon config file (cluster, credentials_file, settings); flags override it."
)


def _sources(
    cluster: str | None,
    config: Path | None,
    spec: Path | None,
    im_url: str | None,
    auth_file: Path | None,
    infra_id: str | None,
    kubeconfig: Path | None,
    context: str | None,
    insecure: bool,
    ssh_key: str | None = None,
    drain_timeout: float = 120.0,
) -> DaemonSources:
    """Flags first, then the ``--config`` file."""
    from deployer.daemon.config import read_daemon_file
    from deployer.daemon.runner import DaemonSources
    from deployer.errors import UserError

    file = read_daemon_file(config) if config is not None else None
    name = cluster or (file.cluster if file is not None else None)
    if not name:
        raise UserError("name the cluster: --cluster NAME (or 'cluster:' in the --config file)")
    return DaemonSources(
        cluster=name,
        spec_file=spec,
        spec_config=file.spec if file is not None and spec is None else None,
        im_url=im_url or (file.im_url if file is not None else None),
        auth_file=auth_file or (file.auth_file if file is not None else None),
        infra_id=infra_id or (file.infra_id if file is not None else None),
        insecure=insecure or (file.insecure if file is not None else False),
        kubeconfig=kubeconfig or (file.kubeconfig if file is not None else None),
        kube_context=context,
        ssh_key=ssh_key or (file.ssh_key if file is not None else None),
        drain_timeout=drain_timeout,
        token_source=file.token if file is not None else None,
    )


def _on_sandbox(paths: Paths, sources: DaemonSources) -> tuple[DaemonSources, ScaledClock]:
    """A local (simulated) deployment: the daemon talks to its sandbox cluster (started if needed) unless
    given a kubeconfig, on the sandbox's clock, which may run faster than real time (``deployer demo``)."""
    from dataclasses import replace

    from deployer.adapters.state.store import DeploymentStore
    from deployer.clock import REAL_CLOCK
    from deployer.sandbox.processes import running_sandbox, start_sandbox

    record = DeploymentStore(paths.state_db).find(sources.cluster)
    if sources.kubeconfig is not None or record is None or not record.dummy_vms:
        return sources, REAL_CLOCK
    start_sandbox(paths, sources.cluster)
    sandbox = running_sandbox(paths, sources.cluster)
    if sandbox is None:
        return sources, REAL_CLOCK
    return replace(sources, kubeconfig=sandbox.kubeconfig), sandbox.clock


def _emit(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        output.print_json(report)
    else:
        _print_report(report)


def _print_report(report: dict[str, Any]) -> None:
    if not report["synced"]:
        output.warn("the Kubernetes watch had not synced: no decision")
    actions = [
        ["scale-up", u["group"], str(u["count"]), ", ".join(u["nodes"]), u["reason"]]
        for u in report["scale_ups"]
    ]
    actions += [
        ["scale-down", d["group"], str(len(d["nodes"])), ", ".join(d["nodes"]), d["reason"]]
        for d in report["scale_downs"]
    ]
    actions += [["mark-failed", f["group"] or "", "1", f["node"], f["reason"]] for f in report["failures"]]
    if actions:
        output.table(["action", "group", "count", "nodes", "reason"], actions, title="Plan")
    else:
        output.info("plan: nothing to do")
    if report["pending"]:
        output.table(
            ["pod", "why it waits"],
            [[p["pod"], p["reason"]] for p in report["pending"]],
            title="Pending pods",
        )
    if report["nodes"]:
        rows = [[n["name"], n["group"], n["phase"], n["vm_id"] or ""] for n in report["nodes"]]
        output.table(["node", "group", "phase", "vm"], rows, title="Managed nodes")


@app.command("run")
def run(
    ctx: typer.Context,
    cluster: str | None = typer.Option(None, "--cluster", help="Deployment (cluster) name."),
    config: Path | None = _CONFIG,
    kubeconfig: Path | None = _KUBECONFIG,
    context: str | None = _CONTEXT,
    once: bool = typer.Option(
        False, "--once", help="One reconcile round, then exit (cron, timers, CronJobs)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan of one round; change nothing."),
    metrics_port: int | None = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics here."),
    metrics_address: str = typer.Option(
        "127.0.0.1",
        "--metrics-address",
        help="Address the metrics listen on (default loopback; in a pod: 0.0.0.0 or the pod's IP).",
    ),
    leader_elect: bool | None = typer.Option(
        None, "--leader-elect/--no-leader-elect", help="Lease-based leader election (default: on in-cluster)."
    ),
    lease_namespace: str = typer.Option("kube-system", "--lease-namespace", help="Namespace of the Lease."),
    lease_seconds: float = typer.Option(
        15.0, "--lease-seconds", help="How long a crashed leader's Lease lasts before a standby takes over."
    ),
    drain_timeout: float = typer.Option(120.0, "--drain-timeout", help="Seconds to wait for evicted pods."),
    json_out: bool = typer.Option(False, "--json", help="With --dry-run/--once: the plan as JSON."),
    spec: Path | None = _SPEC,
    im_url: str | None = _IM_URL,
    auth_file: Path | None = _AUTH,
    infra_id: str | None = _INFRA,
    insecure: bool = _INSECURE,
    ssh_key: str | None = _SSH_KEY,
) -> None:
    """Run the elasticity daemon for a cluster: power workers on for pending pods and off when idle."""
    from deployer.daemon.lock import LockHeld, run_lock
    from deployer.daemon.report import plan_report
    from deployer.daemon.runner import leadership, lock_path, open_daemon, serve
    from deployer.errors import RemoteError

    paths = app_context(ctx).paths
    sources = _sources(
        cluster,
        config,
        spec,
        im_url,
        auth_file,
        infra_id,
        kubeconfig,
        context,
        insecure,
        ssh_key,
        drain_timeout,
    )
    sources, clock = _on_sandbox(paths, sources)
    if dry_run:
        with open_daemon(paths, sources) as (reconciler, _kube, _resolved):
            outcome = reconciler.run_once(clock.time(), dry_run=True)
        report = plan_report(outcome.plan, outcome.state, outcome.snapshot)
        _emit(report, json_out)
        return
    try:
        with ExitStack() as stack:
            stack.enter_context(run_lock(lock_path(paths, sources.cluster)))
            reconciler, kube, resolved = stack.enter_context(open_daemon(paths, sources))
            in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and sources.kubeconfig is None
            elect = in_cluster if leader_elect is None else leader_elect
            if once:
                if elect:  # a CronJob run must not act beside a running leader, nor beside another run
                    leader = stack.enter_context(
                        leadership(reconciler, kube, resolved, lease_namespace, lease_seconds=lease_seconds)
                    )
                    if not leader.wait_for_leadership(2 * lease_seconds):
                        output.warn("another replica holds the Lease: skipping this run")
                        return
                outcome = reconciler.run_once(clock.time())
                report = plan_report(outcome.plan, outcome.state, outcome.snapshot)
                _emit(report, json_out)
                if outcome.errors:
                    first = outcome.errors[0]
                    raise first if isinstance(first, RemoteError) else RemoteError(str(first))
                return
            stop = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            output.info(f"daemon for {sources.cluster} running; SIGTERM or Ctrl-C stops it")
            stats = serve(
                reconciler,
                kube,
                resolved,
                stop,
                metrics_port=metrics_port,
                metrics_host=metrics_address,
                leader_namespace=lease_namespace if elect else None,
                lease_seconds=lease_seconds,
                clock=clock,
            )
            output.info(f"stopped after {stats.rounds} round(s), {stats.failures} failed")
    except LockHeld as err:
        output.warn(str(err))  # an overlapping cron run: not a failure


@app.command("explain")
def explain(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment (cluster) name."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
    kubeconfig: Path | None = _KUBECONFIG,
    context: str | None = _CONTEXT,
    config: Path | None = _CONFIG,
    spec: Path | None = _SPEC,
    im_url: str | None = _IM_URL,
    auth_file: Path | None = _AUTH,
    infra_id: str | None = _INFRA,
    insecure: bool = _INSECURE,
) -> None:
    """The plan the daemon would carry out now, why each pending pod is waiting, and the state of its
    access token (when its config names a token source)."""
    from deployer.daemon.report import plan_report
    from deployer.daemon.runner import open_daemon
    from deployer.errors import DeployerError

    paths = app_context(ctx).paths
    sources = _sources(name, config, spec, im_url, auth_file, infra_id, kubeconfig, context, insecure)
    sources, clock = _on_sandbox(paths, sources)
    with open_daemon(paths, sources) as (reconciler, _kube, resolved):
        credentials = resolved.credentials
        try:
            outcome = reconciler.run_once(clock.time(), dry_run=True)
        except DeployerError as err:
            if credentials is not None:  # no plan without the IM: still say what the token is doing
                _emit_credentials(credentials, json_out, error=str(err))
            raise
    report = plan_report(outcome.plan, outcome.state, outcome.snapshot)
    if credentials is not None and json_out:
        report["credentials"] = credentials.status().as_dict(time.time())
    _emit(report, json_out)
    if credentials is not None and not json_out:
        _emit_credentials(credentials, json_out=False)


def _emit_credentials(credentials: DaemonCredentials, json_out: bool, error: str | None = None) -> None:
    from deployer.daemon.credentials import describe_status

    status = credentials.status()
    if json_out:
        output.print_json({"credentials": status.as_dict(time.time()), "error": error})
        return
    lines = describe_status(status, time.time())
    say = output.warn if status.last_error or error else output.info
    say("credentials: " + "; ".join(lines))


INSTALL_HINT = """\
Run the elasticity daemon for {name} in one of these ways (details and full files: docs/daemon.md).

1. Long-running, on the front end or any host with the kubeconfig (systemd service):
     deployer daemon run --cluster {name} --metrics-port 9464

2. Periodic one-shot rounds (a file lock skips a run while the previous one is still going; the
   elastic_daemon Ansible role installs such a timer with `--once --config /etc/deployer/daemon.yaml`):
     cron:            * * * * *  deployer daemon run --cluster {name} --once
     systemd timer:   OnUnitActiveSec=30s running `deployer daemon run --cluster {name} --once`

3. In the cluster, as a Deployment with leader election (only the Lease holder acts):
     deployer daemon run --cluster {name} --spec /etc/deployer/spec.yaml --im-url URL \\
       --auth-file /etc/deployer/auth.dat --infra-id ID --leader-elect --metrics-port 9464
   or as a CronJob running the same with --once.

Preview what it would do:  deployer daemon run --cluster {name} --dry-run
Why pods are waiting:      deployer daemon explain {name}
"""


@app.command("install")
def install(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment (cluster) name."),
    front: str | None = typer.Option(
        None, "--front", help="Front-end address to use instead of the deployment's IM outputs."
    ),
    front_user: str = typer.Option("root", "--front-user", help="SSH user on --front (root or sudo)."),
    front_key: Path | None = typer.Option(None, "--front-key", help="SSH private key for --front."),
    service: bool = typer.Option(
        False, "--service", help="Run the long-running daemon instead of one round per timer tick."
    ),
    interval: str | None = typer.Option(None, "--interval", help="Timer period (systemd syntax, e.g. 30s)."),
    im_url: str | None = typer.Option(
        None, "--im-url", help="The IM as the front end reaches it (default: the deployment's)."
    ),
    vars_file: Path | None = typer.Option(
        None,
        "--vars-file",
        help="YAML file of more elastic_daemon role variables (elastic_daemon_package, ...).",
    ),
    insecure_host_keys: bool = typer.Option(
        False, "--insecure-host-keys", help="Skip SSH host key checking for this run (lab and test hosts)."
    ),
    refresh_token_file: Path | None = typer.Option(
        None,
        "--refresh-token-file",
        help="File holding an OIDC refresh token (offline access): copied 0600 to the front end, where the "
        "daemon uses it to refresh its own access token. Needs --issuer and --client-id.",
    ),
    issuer: str | None = typer.Option(None, "--issuer", help="OIDC issuer URL of the refresh token."),
    token_endpoint: str | None = typer.Option(
        None, "--token-endpoint", help="The issuer's token endpoint (default: OpenID discovery)."
    ),
    client_id: str | None = typer.Option(None, "--client-id", help="OIDC client the refresh token is for."),
    client_secret_file: Path | None = typer.Option(
        None, "--client-secret-file", help="File holding that client's secret, if it has one (copied 0600)."
    ),
    scope: str | None = typer.Option(None, "--scope", help="Scopes to ask for at each refresh."),
    oidc_agent_account: str | None = typer.Option(
        None, "--oidc-agent-account", help="Get tokens from this account of an oidc-agent on the front end."
    ),
    token_file: str | None = typer.Option(
        None, "--token-file", help="Read tokens from this file ON THE FRONT END, rotated by something else."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Install the daemon on the cluster's front end: its config, IM credentials (0600) and systemd units.

    With --refresh-token-file, --oidc-agent-account or --token-file, the daemon refreshes its own access
    token on the front end instead of using a copy of today's (which expires within the hour)."""
    from deployer.cli.playbooks import load_vars_file, playbook_progress
    from deployer.lifecycle import daemon_install
    from deployer.lifecycle.edge import explicit_front

    ac = app_context(ctx)
    token = daemon_install.token_install(
        refresh_token_file=refresh_token_file,
        issuer=issuer,
        token_endpoint=token_endpoint,
        client_id=client_id,
        client_secret_file=client_secret_file,
        scope=scope,
        oidc_agent_account=oidc_agent_account,
        token_file=token_file,
    )
    options = daemon_install.DaemonInstallOptions(
        run_mode="service" if service else "timer",
        interval=interval,
        im_url=im_url,
        extra_vars=load_vars_file(vars_file),
        host_key_checking=not insecure_host_keys,
        token=token,
    )
    target = explicit_front(front, user=front_user, key_file=front_key) if front else None
    result = daemon_install.install_daemon(
        ac.paths, name, front=target, on_event=playbook_progress(ac.verbose), options=options
    )
    if result is None:
        hint = daemon_install.install_hint_command(name)
        output.warn(f"{name} runs on the local (simulated) cloud: no front end to install on; see `{hint}`")
        if json_out:
            output.print_json({"cluster": name, "status": "skipped", "hint": hint})
        return
    failure = daemon_install.install_failure(result)
    summary = result.hosts.get(daemon_install.FRONT)
    unit = f"deployer-daemon.{options.run_mode}"
    row = {
        "cluster": name,
        "front": target.address if target else "(from the IM outputs)",
        "status": "ok" if failure is None else "failed",
        "mode": options.run_mode,
        "unit": unit,
        "ok": summary.ok if summary else 0,
        "changed": summary.changed if summary else 0,
        "failed": summary.failed if summary else 0,
        "unreachable": summary.unreachable if summary else 0,
        "error": failure,
        "log": str(result.log_path),
    }
    if json_out:
        output.print_json(row)
    else:
        columns = ["front", "status", "mode", "ok", "changed", "failed", "unreachable"]
        output.table(columns, [[row[c] for c in columns]], title=f"daemon install {name}")
    if failure is not None:
        output.error(failure)
    output.info(f"full log: {result.log_path}")
    if failure is not None:
        raise typer.Exit(1)


@app.command("install-hint")
def install_hint(name: str = typer.Argument("CLUSTER", help="Deployment (cluster) name.")) -> None:
    """How to run the daemon: cron, systemd timer/service, Kubernetes Deployment or CronJob."""
    typer.echo(INSTALL_HINT.format(name=name), nl=False)
