"""``deployer simulate``: replay a workload trace through an elasticity policy on a virtual clock.

The simulator (``deployer.sim``) and matplotlib are imported inside the command so that ``deployer --help``
stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from deployer.cli.output import info, print_json, table

if TYPE_CHECKING:
    from deployer.core.spec import ClusterSpec
    from deployer.sim.engine import SimConfig
    from deployer.sim.run import SimResult
    from deployer.sim.trace import TraceJob


class PolicyName(str, Enum):
    deployer = "deployer"
    clues = "clues"
    static_max = "static-max"
    static_min = "static-min"


_ROWS = (
    ("jobs completed", lambda r: f"{r.jobs_completed}/{r.jobs}"),
    ("node-hours", lambda r: f"{r.node_hours:.2f}"),
    ("lower bound node-hours", lambda r: f"{r.lower_bound_node_hours:.2f}"),
    (
        "× lower bound",
        lambda r: f"{r.node_hours / r.lower_bound_node_hours:.2f}" if r.lower_bound_node_hours else "-",
    ),
    ("cost", lambda r: f"{r.cost:.2f}"),
    ("pending p50 (s)", lambda r: f"{r.pending_p50_s:.0f}"),
    ("pending p95 (s)", lambda r: f"{r.pending_p95_s:.0f}"),
    ("pending mean (s)", lambda r: f"{r.pending_mean_s:.0f}"),
    ("pending max (s)", lambda r: f"{r.pending_max_s:.0f}"),
    ("evictions", lambda r: str(r.evictions)),
    ("IM calls", lambda r: str(r.im_calls)),
    ("unplaceable", lambda r: str(r.unplaceable)),
    ("settled", lambda r: "yes" if r.settled else "no (cut at the cap)"),
)

# The trade-off a sweep shows, one row per value: short headers, so that the table fits a terminal.
_CELLS = dict(_ROWS)
_SWEEP_ROWS = tuple(
    (short, _CELLS[label])
    for short, label in (
        ("node-h", "node-hours"),
        ("× bound", "× lower bound"),
        ("cost", "cost"),
        ("wait p50", "pending p50 (s)"),
        ("wait p95", "pending p95 (s)"),
        ("wait mean", "pending mean (s)"),
        ("evictions", "evictions"),
        ("done", "jobs completed"),
    )
)


trace_app = typer.Typer(no_args_is_help=True)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("simulate")(simulate)
    app.add_typer(trace_app, name="trace", help="Workload traces of live clusters, for `simulate`.")


@trace_app.command("record")
def record(
    ctx: typer.Context,
    cluster: str = typer.Option(..., "--cluster", help="Deployment (cluster) name."),
    output: Path = typer.Option(..., "--output", "-o", help="The trace CSV to write."),
    since: str = typer.Option("24h", "--since", help="Pods created this long ago or later: 90m, 24h, 7d."),
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Kubeconfig (default: the one `deployer kubeconfig NAME` fetched)."
    ),
    context: str | None = typer.Option(None, "--context", help="Kubeconfig context."),
    page_size: int = typer.Option(500, "--page-size", min=1, help="Pods per list request."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Write the cluster's pods (creation, run, requests, arch, class) as a trace for `simulate --trace`."""
    import os
    import time

    from deployer.adapters.kube.client import make_api_client
    from deployer.adapters.kube.history import list_pods, pod_run
    from deployer.cli.context import app_context
    from deployer.lifecycle.kubeconfig import default_destination
    from deployer.sim.record import trace_from_runs
    from deployer.sim.trace import write_trace_csv

    window = _seconds(since, "--since")
    if kubeconfig is None:
        fetched = default_destination(app_context(ctx).paths, cluster)
        kubeconfig = fetched if fetched.exists() else None
    api_client = make_api_client(kubeconfig, context=context)
    try:
        now = time.time()
        runs = [pod_run(raw) for raw in list_pods(api_client, page_size)]
    finally:
        api_client.close()
    recorded = trace_from_runs(runs, now, window)
    partial = output.with_name(f".{output.name}.partial")  # renamed into place: never a half-written trace
    write_trace_csv(partial, recorded.jobs)
    os.replace(partial, output)
    summary = {
        "cluster": cluster,
        "trace": str(output),
        "pods": len(recorded.jobs),
        "still_running": recorded.still_running,
        "skipped_not_started": recorded.not_started,
        "skipped_per_node": recorded.per_node,
        "skipped_before_window": recorded.before_window,
    }
    if json_output:
        print_json(summary)
        return
    info(
        f"{cluster}: wrote {len(recorded.jobs)} pods to {output} ({recorded.still_running} still running, "
        f"their run cut now); left out {recorded.not_started} not started, {recorded.per_node} DaemonSet/"
        f"mirror, {recorded.before_window} created before the last {since}"
    )


def _seconds(text: str, flag: str) -> float:
    """``90``, ``30s``, ``90m``, ``24h``, ``7d`` as seconds; a one-line error naming ``flag`` otherwise."""
    from deployer.errors import UserError

    raw = text.strip().lower()
    unit = _DURATION_UNITS.get(raw[-1:])
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UserError(f"{flag} {text}: expected a positive duration such as 90m, 24h or 7d")
    return value


def simulate(
    spec: Path = typer.Option(
        ..., "--spec", help="Cluster spec YAML: its worker/edge groups and elasticity."
    ),
    trace: Path = typer.Option(
        ...,
        "--trace",
        help="Workload: CSV submit_s,cpu,memory_mib,duration_s[,arch][,gpu][,kind][,class] or JSON Lines.",
    ),
    policy: PolicyName = typer.Option(PolicyName.deployer, "--policy", help="The elasticity policy to run."),
    compare: bool = typer.Option(
        False, "--compare", help="Run every policy on the same trace, side by side."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG chart (needs matplotlib)."),
    seed: int = typer.Option(0, "--seed", help="Seed of boot times and failures: same seed, same result."),
    cloud_boot: float | None = typer.Option(
        None,
        "--cloud-boot-seconds",
        min=1,
        help="Mean boot time of cloud VMs (default: each group's in the spec).",
    ),
    edge_boot: float | None = typer.Option(
        None,
        "--edge-boot-seconds",
        min=1,
        help="Mean Wake-on-LAN boot time of edge boards (default: the spec's).",
    ),
    boot_jitter: float = typer.Option(
        1 / 3,
        "--boot-jitter",
        min=0,
        max=0.99,
        show_default="1/3: cloud 180 s +- 60 s",
        help="Boot time varies by +- this fraction of the group's.",
    ),
    shutdown_seconds: float = typer.Option(
        30.0, "--shutdown-seconds", min=0, help="Time to power a node off."
    ),
    boot_failure_rate: float = typer.Option(
        0.0, "--boot-failure-rate", min=0, max=1, help="Share of power-ons that never become Ready."
    ),
    idle_time: float | None = typer.Option(
        None,
        "--idle-time",
        min=0,
        help="Idle seconds before power-off, for every policy (default: the spec's).",
    ),
    max_booting: int | None = typer.Option(
        None, "--max-booting", min=0, help="Nodes booting at once, for every policy (default: the spec's)."
    ),
    strict_fifo: bool = typer.Option(False, "--strict-fifo", help="Batch-queue scheduling: no backfill."),
    queue_period: float = typer.Option(
        0.0, "--queue-period", min=0, help="Bind pods and end jobs only every this many seconds (0: at once)."
    ),
    sweep: str | None = typer.Option(
        None,
        "--sweep",
        metavar="FIELD=V1,V2,...",
        help="Run the policy once per value of one spec setting (e.g. elasticity.idle_time=60,120,300) "
        "and show the trade-off.",
    ),
) -> None:
    """Simulate a trace on the spec's cluster under an elasticity policy and report cost and waiting time."""
    from deployer.core.spec import load_spec
    from deployer.errors import UserError
    from deployer.sim.engine import SimConfig
    from deployer.sim.run import POLICIES
    from deployer.sim.trace import load_trace

    jobs = load_trace(trace)
    config = SimConfig(
        seed=seed,
        boot_jitter=boot_jitter,
        shutdown_seconds=shutdown_seconds,
        boot_failure_rate=boot_failure_rate,
        strict_fifo=strict_fifo,
        queue_period=queue_period,
        record_timeline=plot is not None,
    )

    def run(cluster: ClusterSpec, name: str) -> SimResult:
        return _run_on(cluster, jobs, name, config, idle_time, max_booting, cloud_boot, edge_boot)

    if sweep is not None:
        if compare:
            raise UserError("--sweep runs one policy per value; drop --compare (or run --compare per value)")
        field, variants = _sweep_variants(spec, sweep, idle_time, max_booting)
        runs = [(value, run(cluster, policy.value)) for value, cluster in variants]
        _report_sweep(
            field, runs, json_output, plot, f"{trace.name} ({len(jobs)} jobs) on {spec.name}, seed {seed}"
        )
        return
    cluster = load_spec(spec)
    names = POLICIES if compare else (policy.value,)
    results = [run(cluster, name) for name in names]

    if plot is not None:
        from deployer.sim.plot import plot_runs

        edge = [g.name for g in cluster.edge_groups]
        plot_runs(results, plot, f"{trace.name} on {spec.name}", edge_groups=edge)
        info(f"wrote {plot}")
    if json_output:
        print_json([r.to_dict() for r in results] if compare else results[0].to_dict())
        return
    _print_table(results, f"{trace.name} ({len(jobs)} jobs) on {spec.name}, seed {seed}")


def _run_on(
    cluster: ClusterSpec,
    jobs: list[TraceJob],
    policy: str,
    config: SimConfig,
    idle_time: float | None,
    max_booting: int | None,
    cloud_boot: float | None,
    edge_boot: float | None,
) -> SimResult:
    """One run of ``policy`` on the groups and settings of ``cluster``, with the command's overrides."""
    from dataclasses import replace

    from deployer.core.elasticity.model import GroupKind
    from deployer.sim.run import inputs_from_spec, simulate

    groups, settings = inputs_from_spec(cluster, idle_time=idle_time, max_booting=max_booting)
    groups = tuple(
        replace(g, boot_seconds=boot)
        if (boot := cloud_boot if g.kind is GroupKind.CLOUD else edge_boot)
        else g
        for g in groups
    )
    return simulate(groups, jobs, policy, config, settings)


def _sweep_variants(
    spec: Path, sweep: str, idle_time: float | None, max_booting: int | None
) -> tuple[str, list[tuple[str, ClusterSpec]]]:
    """The swept field and, per value, the spec with that value set (each validated like ``--set``)."""
    from deployer.core.spec import load_spec
    from deployer.errors import UserError

    field, sep, raw = sweep.partition("=")
    field = field.strip()
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not sep or not field or not values:
        raise UserError(f"--sweep {sweep}: expected FIELD=V1,V2,..., e.g. elasticity.idle_time=60,120,300")
    overridden = {"elasticity.idle_time": idle_time, "elasticity.max_booting": max_booting}
    if overridden.get(field) is not None:
        flag = "--idle-time" if field.endswith("idle_time") else "--max-booting"
        raise UserError(f"--sweep {field}: {flag} would override every value; drop {flag}")
    variants = []
    for value in values:
        try:
            variants.append((value, load_spec(spec, [f"{field}={value}"])))
        except UserError as exc:
            raise UserError(f"--sweep {field}={value}: {exc}") from None
    return field, variants


def _report_sweep(
    field: str, runs: list[tuple[str, SimResult]], json_output: bool, plot: Path | None, title: str
) -> None:
    if plot is not None:
        from deployer.sim.plot import plot_sweep

        plot_sweep(field, runs, plot, title)
        info(f"wrote {plot}")
    if json_output:
        print_json({"sweep": field, "runs": [{"value": value, **r.to_dict()} for value, r in runs]})
        return
    columns = [field.rsplit(".", 1)[-1], *(label for label, _ in _SWEEP_ROWS)]
    rows = [[value, *(fmt(r) for _, fmt in _SWEEP_ROWS)] for value, r in runs]
    table(columns, rows, title=f"{title}, policy {runs[0][1].policy}, sweep of {field} (waits in s)")


def _print_table(results: list[SimResult], title: str) -> None:
    columns = ["", *(r.policy for r in results)]
    rows = [[label, *(fmt(r) for r in results)] for label, fmt in _ROWS]
    table(columns, rows, title=title)
