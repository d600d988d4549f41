"""PNG charts of simulation runs (matplotlib, Agg backend, imported only when a plot is asked for).

Top panel, for one policy (ours when present): nodes on per group as a stacked area (edge groups in greens,
cloud groups in blues), pending pods as a line on a second axis, and scale-up/scale-down events as
triangles. Bottom panel: cumulative cost of every policy run on the same trace.
``plot_sweep`` draws the trade-off of ``simulate --sweep``. Called by the ``simulate --plot`` command and
``bench/policy_compare.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployer.errors import UserError
from deployer.sim.run import SimResult

_POLICY_COLOURS = {
    "deployer": "#d62728",
    "clues": "#7f7f7f",
    "static-max": "#9467bd",
    "static-min": "#8c564b",
}
_EDGE_COLOURS = ("#2ca02c", "#98df8a", "#006d2c", "#74c476")
_CLOUD_COLOURS = ("#1f77b4", "#aec7e8", "#08519c", "#6baed6")


def _steps(times: Sequence[float], values: Sequence[float], end: float) -> tuple[list[float], list[float]]:
    """A step function held until ``end``, in hours."""
    xs = [t / 3600 for t in times] + [end / 3600]
    ys = [*values, values[-1]] if values else [0.0]
    return xs, ys


def cumulative_cost(result: SimResult, per_node_hour: bool = False) -> tuple[list[float], list[float]]:
    """Hours and cumulative cost: the integral of nodes-on times each group's hourly cost.

    ``per_node_hour`` prices every node-hour at 1 (cumulative node-hours), for specs without costs.
    """
    timeline = result.timeline
    if timeline is None or not timeline.times:
        return [0.0, result.end_s / 3600], [0.0, result.node_hours if per_node_hour else result.cost]
    prices = [1.0 if per_node_hour else result.group_costs.get(g, 0.0) for g in timeline.groups]
    rates = [sum(n * p for n, p in zip(counts, prices, strict=True)) for counts in timeline.nodes_on]
    xs, ys, total, previous, rate = [0.0], [0.0], 0.0, 0.0, 0.0
    for t, next_rate in zip([*timeline.times, result.end_s], [*rates, rates[-1]], strict=True):
        total += rate * (t - previous) / 3600
        xs.append(t / 3600)
        ys.append(total)
        previous, rate = t, next_rate
    return xs, ys


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'deployer[plot]'") from None
    return plt


def plot_runs(results: Sequence[SimResult], path: Path, title: str, edge_groups: Sequence[str] = ()) -> None:
    """Write the chart of ``results`` (all from one trace) to ``path``."""
    if not results:
        raise UserError("nothing to plot: no simulation results")
    plt = _pyplot()

    focus = next((r for r in results if r.policy == "deployer"), results[0])
    timeline = focus.timeline
    if timeline is None:
        raise UserError("the run was not recorded with a timeline; simulate with record_timeline=True")
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}, constrained_layout=True
    )
    fig.suptitle(title, fontsize=13, fontweight="bold")

    edge_i = cloud_i = 0
    colours = []
    for group in timeline.groups:
        if group in edge_groups:
            colours.append(_EDGE_COLOURS[edge_i % len(_EDGE_COLOURS)])
            edge_i += 1
        else:
            colours.append(_CLOUD_COLOURS[cloud_i % len(_CLOUD_COLOURS)])
            cloud_i += 1
    order = sorted(range(len(timeline.groups)), key=lambda i: timeline.groups[i] not in edge_groups)
    xs: list[float] = []
    stacks = []
    for i in order:
        xs, ys = _steps(timeline.times, [counts[i] for counts in timeline.nodes_on], focus.end_s)
        stacks.append(ys)
    labels = [
        f"{timeline.groups[i]} ({'edge' if timeline.groups[i] in edge_groups else 'cloud'}) nodes on"
        for i in order
    ]
    top.stackplot(xs, *stacks, labels=labels, colors=[colours[i] for i in order], step="post", alpha=0.85)
    top.set_ylabel("nodes on (stacked by group)")
    top.set_ylim(bottom=0)

    pending_axis = top.twinx()
    px, py = _steps(timeline.times, timeline.pending, focus.end_s)
    pending_axis.step(px, py, where="post", color="black", linewidth=1.1, label="pending pods")
    pending_axis.set_ylabel("pending pods")
    pending_axis.set_ylim(bottom=0)

    ups = [e for e in focus.scale_events if e.delta > 0]
    downs = [e for e in focus.scale_events if e.delta < 0]
    top_y = top.get_ylim()[1]
    top.scatter(
        [e.time / 3600 for e in ups],
        [top_y * 0.97] * len(ups),
        marker="^",
        color="#ff7f0e",
        s=28,
        label=f"scale-up ({len(ups)})",
        zorder=5,
        clip_on=False,
    )
    top.scatter(
        [e.time / 3600 for e in downs],
        [top_y * 0.92] * len(downs),
        marker="v",
        color="#17becf",
        s=28,
        label=f"scale-down ({len(downs)})",
        zorder=5,
        clip_on=False,
    )
    handles, names = top.get_legend_handles_labels()
    more_handles, more_names = pending_axis.get_legend_handles_labels()
    # Above the panel, in one row, so that it never hides the data or the event markers.
    top.legend(
        handles + more_handles,
        names + more_names,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=len(handles) + len(more_handles),
        fontsize=8,
        frameon=False,
    )
    top.set_title(
        f"policy '{focus.policy}': {focus.node_hours:.1f} node-h "
        f"(lower bound {focus.lower_bound_node_hours:.1f}), "
        f"p95 pending {focus.pending_p95_s:.0f} s, {focus.evictions} evictions",
        fontsize=10,
        pad=24,
    )
    top.grid(alpha=0.3)

    unpriced = all(r.cost == 0 for r in results)
    for result in results:
        cx, cy = cumulative_cost(result, per_node_hour=unpriced)
        total = result.node_hours if unpriced else result.cost
        colour = _POLICY_COLOURS.get(result.policy)
        bottom.plot(
            cx,
            cy,
            label=f"{result.policy}: {total:.2f}",
            color=colour,
            linewidth=2.2 if result is focus else 1.4,
        )
    bottom.set_ylabel("cumulative node-hours (no costs in spec)" if unpriced else "cumulative cost")
    bottom.set_xlabel("time (hours)")
    bottom.legend(loc="upper left", fontsize=8, title="total by policy", title_fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.set_ylim(bottom=0)
    bottom.set_xlim(left=0)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(field: str, runs: Sequence[tuple[str, SimResult]], path: Path, title: str) -> None:
    """The trade-off of a ``simulate --sweep``: node-hours against p95 and mean pending time, per value."""
    if not runs:
        raise UserError("nothing to plot: no simulation results")
    plt = _pyplot()
    fig, (hours, waits) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    fig.suptitle(f"{title}: sweep of {field}", fontsize=12, fontweight="bold")
    labels = [value for value, _ in runs]
    positions = range(len(runs))
    hours.bar(positions, [r.node_hours for _, r in runs], color=_POLICY_COLOURS.get(runs[0][1].policy))
    hours.axhline(runs[0][1].lower_bound_node_hours, color="black", linestyle="--", label="lower bound")
    hours.set_xticks(list(positions), labels)
    hours.set_xlabel(field)
    hours.set_ylabel("node-hours")
    hours.legend(fontsize=8)
    hours.grid(alpha=0.3, axis="y")
    for key, label in (("pending_p95_s", "p95 pending (s)"), ("pending_mean_s", "mean pending (s)")):
        waits.plot(
            [r.node_hours for _, r in runs], [getattr(r, key) for _, r in runs], marker="o", label=label
        )
    for value, r in runs:
        waits.annotate(f"{field.rsplit('.', 1)[-1]}={value}", (r.node_hours, r.pending_p95_s), fontsize=8)
    waits.set_xlabel("node-hours")
    waits.set_ylabel("pending time (s)")
    waits.set_title("cost against waiting: lower left is better", fontsize=10)
    waits.legend(fontsize=8)
    waits.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
