"""``deployer demo``: see elasticity without a cloud account (``deployer.sandbox.demo``).

Shows live, on stderr, the pending pods, the nodes per group with their states and the daemon's decisions
with their reasons: a rich view on a terminal, one plain line per change otherwise. The summary goes to
stdout (a table, or one JSON object with ``--json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deployer.cli.context import app_context
from deployer.cli.output import info, print_json, table

if TYPE_CHECKING:
    from deployer.sandbox.demo import DemoView


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    trace: Path | None = typer.Option(
        None,
        "--trace",
        help="Jobs to submit: the simulator's trace format (CSV or JSON Lines: submit_s,cpu,memory_mib,"
        "duration_s[,arch][,gpu][,kind]); default: a built-in burst of 8 jobs.",
    ),
    speed: float = typer.Option(
        10.0, "--speed", min=1.0, max=100.0, help="Virtual seconds per real second (1: real time)."
    ),
    timeout: float = typer.Option(
        170.0, "--timeout", min=10, help="Real seconds before the demo gives up (exit code 4)."
    ),
    keep: bool = typer.Option(False, "--keep", help="Leave the cluster running (destroy it yourself)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Create a local cluster, run the elasticity daemon on it and submit a burst of Jobs: watch pending
    pods turn into VMs and idle VMs go away, on an accelerated clock."""
    from deployer.sandbox.demo import DEFAULT_TRACE, Demo
    from deployer.sim.trace import load_trace

    jobs = load_trace(trace) if trace is not None else list(DEFAULT_TRACE)
    runner = Demo(app_context(ctx).paths, jobs, speed=speed)
    info(f"demo: cluster {runner.cluster}, {len(jobs)} jobs, clock at {speed:g}x (times below are virtual)")
    with _LiveView() as view:
        summary = runner.run(view.show, timeout=timeout, keep=keep)
    if keep:
        info(f"demo: {runner.cluster} keeps running; `deployer kubeconfig {runner.cluster}` to look at it")
    if json_output:
        print_json(summary.to_json())
    else:
        rows = [[key, value] for key, value in summary.to_json().items()]
        table(["figure", "value"], rows, title="demo summary")
    if not summary.finished:
        info(f"demo: not finished within {timeout:.0f}s (raise --speed or --timeout)")
        raise typer.Exit(4)  # the timeout exit code (deployer.errors.TimeoutExpired)


class _LiveView:
    """A rich live panel on a terminal; one line per change otherwise."""

    def __init__(self) -> None:
        from deployer.cli.output import stderr

        self._console = stderr()
        self._live: Any = None
        self._lines: dict[str, str] = {}
        self._decisions_seen = 0

    def __enter__(self) -> _LiveView:
        if self._console.is_terminal:
            from rich.live import Live

            self._live = Live(console=self._console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def show(self, view: DemoView) -> None:
        if self._live is not None:
            self._live.update(_render(view))
            return
        stamp = f"[t={view.elapsed_s:6.0f}s]"
        for decision in view.decisions[self._decisions_seen :]:
            info(f"{stamp} daemon: {_describe(decision)}")
        self._decisions_seen = len(view.decisions)
        state = {
            "jobs": f"jobs submitted {view.submitted}, completed {view.completed}; pods pending "
            f"{len(view.pending)}, running {view.running}",
            "nodes": "nodes: " + (", ".join(f"{n.name} {n.state}" for n in view.nodes) or "none"),
        }
        for key, line in state.items():
            if self._lines.get(key) != line:
                info(f"{stamp} {line}")
                self._lines[key] = line


def _describe(decision: dict[str, Any]) -> str:
    kind = decision.get("decision", "?")
    if kind == "scale_up":
        what = f"scale up {decision.get('group')} by {decision.get('count')}"
    elif kind == "scale_down":
        what = f"scale down {decision.get('group')}: {', '.join(decision.get('nodes') or [])}"
    else:
        what = f"{kind} {decision.get('node', '')}"
    return f"{what} ({decision.get('reason', '')})"


def _render(view: DemoView) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    header = Text(
        f"t={view.elapsed_s:.0f}s  jobs {view.completed}/{view.submitted} done  "
        f"pending pods {len(view.pending)}  running {view.running}",
        style="bold",
    )
    nodes = Table(title="nodes", show_edge=False)
    for column in ("group", "node", "state"):
        nodes.add_column(column)
    for node in view.nodes:
        nodes.add_row(node.group, node.name, node.state)
    decisions = Table(title="daemon decisions", show_edge=False)
    decisions.add_column("decision")
    for decision in view.decisions[-6:]:
        decisions.add_row(_describe(decision))
    pending = Text("pending: " + (", ".join(view.pending[:8]) or "none"))
    return Group(header, pending, nodes, decisions)
