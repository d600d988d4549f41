"""Run every shipped trace under every policy over several seeds; write bench/results.md and its plots.

    .venv/bin/python bench/policy_compare.py [--seeds 5] [--out bench]

For each trace in bench/traces/ (``NAME.csv`` with its cluster ``NAME.yaml``) the four policies run on the
same seeds (seed = boot-time draws), plus ours with each direction of issue 14 switched off, for the
ablation. Every figure is the mean and the sample standard deviation over the seeds. Our policy is checked
against the targets (zero evictions; node-hours at most 1.25 x the lower bound; p95 pending no worse than
CLUES; node-hours at most 0.8 x CLUES on bursty traces, and issue 14's goal, at most 0.8 x CLUES with p95
no worse, on every trace), and each miss is written down with its cause. The reference sample of CLUES
(../shared/data/clues-reference), never used to tune our policy, is run as a held-out trace; the CLUES
calibration replays it with the reference settings through ``--policy clues``.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from deployer.core.elasticity.model import GroupKind, NodeGroup, Resources
from deployer.core.spec import load_spec
from deployer.sim.clues import CluesSettings
from deployer.sim.engine import SimConfig
from deployer.sim.plot import plot_runs
from deployer.sim.run import POLICIES, PolicySettings, SimResult, inputs_from_spec, simulate
from deployer.sim.trace import TraceJob, load_trace

BENCH = Path(__file__).resolve().parent
REFERENCE = BENCH.parent.parent / "shared" / "data" / "clues-reference"
BURSTY = ("classroom-burst", "edge-mask-detection", "mixed-multicloud")
HELD_OUT = "reference sample (held out)"

# What the real CLUES did on the reference sample (clues-reference/README.md).
REFERENCE_FIGURES = {
    "defaults": {"node_hours": 34.41, "p50": 251, "p95": 268, "mean": 190},
    "MAX_BOOTING_NODES = 2": {"node_hours": 29.48, "p50": 433, "p95": 1111, "mean": 494},
    "IDLE_TIME = 1800": {"node_hours": 59.93, "p50": 232, "p95": 268, "mean": 168},
}
PHASES = ((1, 2, 3), (3, 1, 2), (5, 2, 4), (7, 3, 1), (2, 4, 0), (9, 4, 2))
CALIBRATION_VARIANTS = {
    "defaults": CluesSettings(),
    "MAX_BOOTING_NODES = 2": CluesSettings(max_booting_nodes=2),
    "IDLE_TIME = 1800": CluesSettings(idle_time=1800),
}
# Ours with the directions of issue 14 switched off, for the ablation: elasticity settings changed.
VARIANTS = {
    "before issue 14": {"idle_policy": "break-even", "wait_for_room": "never"},
    "+ wait for room only": {"idle_policy": "break-even"},
    "+ demand idle only": {"wait_for_room": "never"},
}
OURS = "deployer (default: both)"

# Why a target is missed, found by reading the runs (timelines, per-pod waits); printed only on a miss.
BELOW_BOUND = (
    "0.8 x CLUES's node-hours is below (or at) the lower bound itself (see the Issue 14 table): no policy "
    "can reach it, whatever it knows"
)
WHY: dict[tuple[str, str], str] = {
    ("batch-htc", "lower_bound"): (
        "each node pays a boot (about 3 min), its idle wait and a shutdown after its last job, and stays on "
        "while its longest job runs; Job pods cannot be moved, so those tails cannot be reclaimed. On this "
        "steady stream the overhead lands on the 25 % line for CLUES as well"
    ),
    ("batch-htc", "p95"): (
        "about one pod in ten waits for a node to boot under either policy, so the 95th percentile falls "
        "inside that group, where both wait one boot time (120-240 s); which policy is ahead there flips "
        "with the seed (see the spread). Our mean and maximum waits are lower"
    ),
    ("batch-htc", "goal"): BELOW_BOUND,
    ("classroom-burst", "vs_clues"): (
        "a single burst of long (45-75 min) jobs: the jobs themselves dominate (CLUES is already within "
        "1.3 x the lower bound), so 0.8 x CLUES is about the lower bound itself, below what the boots and "
        "shutdowns of 15 VMs alone cost. Nothing finished before the burst, so there are no run times to "
        "learn; we save CLUES's 60-70 s reaction per node, the extra nodes it boots for requests whose jobs "
        "already started elsewhere (peak nodes) and most of its 300 s idle time per node"
    ),
    ("classroom-burst", "goal"): BELOW_BOUND,
    ("edge-mask-detection", "lower_bound"): (
        "at night a trickle of short jobs (0.2/min, 1-4 min each) wakes a board for each job: its 45 s "
        "boot, the job, at least the 60 s idle floor and a 30 s shutdown, so a 2-minute job keeps a board on "
        "for about 4 minutes, and the bound assumes perfectly packed nodes"
    ),
    ("mixed-multicloud", "vs_clues"): (
        "CLUES manages only the first worker group (the cheap cloud, quota 6 VMs), so it never uses the "
        "second cloud: its backlog drains over many hours; its node-hours are those of six small VMs kept "
        "busy, not a like-for-like comparison. We finish the work hours earlier (p50/p95)"
    ),
    ("mixed-multicloud", "goal"): BELOW_BOUND,
}
WHY_DEFAULT = "not analysed for this trace yet"


@dataclass
class Runs:
    """One policy (or variant) on one trace, once per seed."""

    results: list[SimResult]

    def values(self, key: str) -> list[float]:
        return [figure(r, key) for r in self.results]

    def mean(self, key: str) -> float:
        return statistics.fmean(self.values(key))

    def cell(self, key: str, digits: int = 1) -> str:
        values = self.values(key)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} ± {spread:.{digits}f}"


def figure(result: SimResult, key: str) -> float:
    if key == "vs_bound":
        bound = result.lower_bound_node_hours
        return result.node_hours / bound if bound else 0.0
    return float(getattr(result, key))


def _run_all(
    seeds: Sequence[int], run: Callable[[str, PolicySettings, SimConfig], SimResult], settings: PolicySettings
) -> dict[str, Runs]:
    """Every policy and every ablation variant of ours, once per seed; seed 0's runs keep a timeline."""
    runs: dict[str, Runs] = {}
    for name in POLICIES:
        label = OURS if name == "deployer" else name
        drawn = seeds[:1] if name.startswith("static") else seeds  # they boot nothing: no seed matters
        configs = [SimConfig(seed=s, record_timeline=s == seeds[0]) for s in drawn]
        runs[label] = Runs([run(name, settings, config) for config in configs])
    for label, changes in VARIANTS.items():
        variant = replace(settings, elasticity=replace(settings.elasticity, **changes))  # type: ignore[arg-type]
        runs[label] = Runs([run("deployer", variant, SimConfig(seed=s)) for s in seeds])
    return runs


def run_trace(csv: Path, seeds: Sequence[int], plots: Path) -> dict[str, Runs]:
    spec = load_spec(csv.with_suffix(".yaml"))
    groups, settings = inputs_from_spec(spec)
    jobs = load_trace(csv)
    runs = _run_all(seeds, lambda name, st, config: simulate(groups, jobs, name, config, st), settings)
    edge = [g.name for g in groups if g.kind is not GroupKind.CLOUD]
    first = [runs[OURS if n == "deployer" else n].results[0] for n in POLICIES]
    title = f"{csv.stem}: {len(jobs)} jobs, seed {seeds[0]}"
    plot_runs(first, plots / f"{csv.stem}.png", title, edge_groups=edge)
    return runs


def run_held_out(seeds: Sequence[int]) -> dict[str, Runs]:
    """The CLUES reference sample on its 20 nodes (180 s boot, IDLE_TIME 300), with our usual scheduler."""
    groups = (NodeGroup("wn", 0, 20, Resources(4000, 8192, 0, 110), boot_seconds=180),)
    jobs = load_trace(REFERENCE / "sample.csv")
    base = PolicySettings()
    elasticity = replace(base.elasticity, idle_time=300)
    settings = replace(base, elasticity=elasticity, clues=CluesSettings(idle_time=300))
    return {
        label: runs
        for label, runs in _run_all(seeds, _held_out_run(groups, jobs), settings).items()
        if label not in ("static-max", "static-min")
    }


def _held_out_run(
    groups: tuple[NodeGroup, ...], jobs: list[TraceJob]
) -> Callable[[str, PolicySettings, SimConfig], SimResult]:
    def run(name: str, settings: PolicySettings, config: SimConfig) -> SimResult:
        if name.startswith("static"):
            return simulate(groups, jobs[:1], name, config, settings)  # not reported
        return simulate(groups, jobs, name, config, settings)

    return run


def check_targets(trace: str, runs: dict[str, Runs]) -> list[tuple[str, bool, str]]:
    ours, clues = runs[OURS], runs["clues"]
    hours, clues_hours = ours.mean("node_hours"), clues.mean("node_hours")
    ratio, p95, clues_p95 = ours.mean("vs_bound"), ours.mean("pending_p95_s"), clues.mean("pending_p95_s")
    share = hours / clues_hours if clues_hours else 0.0
    evictions = sum(ours.values("evictions"))
    checks = [
        ("zero evictions", evictions == 0, f"{evictions:.0f} in {len(ours.results)} runs", "evictions"),
        ("node-hours <= 1.25 x lower bound", ratio <= 1.25, f"{ratio:.3f} x", "lower_bound"),
        ("p95 pending <= clues", p95 <= clues_p95, f"{p95:.0f} s vs {clues_p95:.0f} s", "p95"),
    ]
    if trace in BURSTY:
        checks.append(("node-hours <= 0.8 x clues (bursty)", share <= 0.8, f"{share:.3f} x", "vs_clues"))
    goal = share <= 0.8 and p95 <= clues_p95
    checks.append(("issue 14: node-hours <= 0.8 x clues, p95 <= clues", goal, f"{share:.3f} x", "goal"))
    return [
        (name, ok, figure_text if ok else f"{figure_text}: {WHY.get((trace, key), WHY_DEFAULT)}")
        for name, ok, figure_text, key in checks
    ]


def calibrate() -> list[tuple[str, SimResult, list[SimResult]]]:
    """Each variant with all polls at t = 0, plus the same variant over the PHASES sweep."""
    groups = (NodeGroup("wn", 0, 20, Resources(4000, 8192, 0, 110), boot_seconds=180),)
    jobs = load_trace(REFERENCE / "sample.csv")
    # The reference queue: strict FIFO, first node that fits, starts and ends on the 20 s lifecycle step.
    config = SimConfig(boot_jitter=0, shutdown_seconds=30, strict_fifo=True, queue_period=20)

    def run(variant: CluesSettings) -> SimResult:
        return simulate(groups, jobs, "clues", config, PolicySettings(clues=variant))

    return [
        (name, run(variant), [run(replace(variant, first_poll=phase)) for phase in PHASES])
        for name, variant in CALIBRATION_VARIANTS.items()
    ]


def _pct(ours: float, ref: float) -> str:
    return f"{ours:.0f} ({(ours - ref) / ref * 100:+.0f} %)" if ref else f"{ours:.0f}"


COLUMNS = (
    ("completed", "jobs_completed", 0),
    ("node-hours", "node_hours", 1),
    ("x lower bound", "vs_bound", 2),
    ("cost", "cost", 2),
    ("p50 pending (s)", "pending_p50_s", 0),
    ("p95 pending (s)", "pending_p95_s", 0),
    ("mean pending (s)", "pending_mean_s", 0),
    ("max pending (s)", "pending_max_s", 0),
    ("evictions", "evictions", 1),
    ("IM calls", "im_calls", 0),
    ("peak nodes", "peak_nodes", 1),
)


def _policy_table(runs: dict[str, Runs], labels: Sequence[str]) -> list[str]:
    lines = [
        "| policy | " + " | ".join(name for name, _, _ in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for label in labels:
        r = runs[label]
        unsettled = "" if all(x.settled for x in r.results) else " (some runs never settled)"
        lines.append(f"| {label}{unsettled} | " + " | ".join(r.cell(key, d) for _, key, d in COLUMNS) + " |")
    return lines


def write_results(
    out: Path,
    traces: dict[str, dict[str, Runs]],
    held_out: dict[str, Runs] | None,
    seeds: Sequence[int],
    calibration: list,
    elapsed: float,
) -> None:
    everything = {**traces, **({HELD_OUT: held_out} if held_out else {})}
    lines = [
        "# Elasticity policies compared on the shipped traces",
        "",
        f"Generated by `bench/policy_compare.py --seeds {len(seeds)}` in {elapsed:.0f} s. Every figure is "
        f"the mean ± the sample standard deviation over seeds {', '.join(map(str, seeds))} (a seed draws "
        "the boot times). Node-hours run from each power-on request to the end of its power-off; the lower "
        "bound is requested cpu-seconds / the largest node's cpus. Pending = start - submit. Plots (seed "
        f"{seeds[0]}): `bench/plots/<trace>.png`. Every policy sees the same cluster, boot-time model (the "
        "group's boot_seconds +- a third: cloud 180 +- 60 s, boards 45 +- 15 s), 30 s shutdowns and the "
        "same scheduler (first fit, cheapest group first, backfill). `deployer` runs with the spec "
        "defaults, among them `idle_policy: demand` and `wait_for_room: break-even` (see Directions).",
        "",
        "## Issue 14: node-hours <= 0.8 x CLUES with p95 pending <= CLUES's",
        "",
        "| trace | lower bound | 0.8 x CLUES | CLUES node-hours | ours | ours / CLUES | ours before "
        "| p95 CLUES (s) | p95 ours (s) | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for trace, runs in everything.items():
        ours, clues, before = runs[OURS], runs["clues"], runs["before issue 14"]
        share = ours.mean("node_hours") / clues.mean("node_hours")
        met = share <= 0.8 and ours.mean("pending_p95_s") <= clues.mean("pending_p95_s")
        bound = ours.results[0].lower_bound_node_hours
        lines.append(
            f"| {trace} | {bound:.1f} | {0.8 * clues.mean('node_hours'):.1f} | {clues.cell('node_hours')} | "
            f"{ours.cell('node_hours')} | {share:.3f} | {before.cell('node_hours')} | "
            f"{clues.cell('pending_p95_s', 0)} | {ours.cell('pending_p95_s', 0)} | "
            f"{'yes' if met else '**no**'} |"
        )
    lines += ["", *goal_notes(everything), ""]
    for trace, runs in traces.items():
        lines += [f"## {trace}", "", f"![{trace}](plots/{trace}.png)", ""]
        lines += _policy_table(runs, [OURS, "clues", "static-max", "static-min"])
        lines += [
            "",
            f"Lower bound: {runs[OURS].results[0].lower_bound_node_hours:.1f} node-hours. Targets for "
            "`deployer` (on the means):",
            "",
        ]
        for name, ok, note in check_targets(trace, runs):
            lines.append(f"- {'met' if ok else '**missed**'}: {name} ({note})")
        lines.append("")
    if held_out:
        lines += [f"## {HELD_OUT}", "", *HELD_OUT_NOTES, ""]
        lines += _policy_table(held_out, [OURS, "clues", *VARIANTS])
        lines.append("")

    lines += [
        "## Directions of issue 14: what each brings (ablation)",
        "",
        "Ours with each direction switched off, same seeds. `before issue 14` is the previous default "
        "(`idle_policy: break-even`, `wait_for_room: never`).",
        "",
        "| trace | variant | node-hours | x CLUES | p95 pending (s) | mean pending (s) | IM calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for trace, runs in everything.items():
        clues_hours = runs["clues"].mean("node_hours")
        for label in (*VARIANTS, OURS):
            r = runs[label]
            lines.append(
                f"| {trace} | {label} | {r.cell('node_hours')} | {r.mean('node_hours') / clues_hours:.3f} | "
                f"{r.cell('pending_p95_s', 0)} | {r.cell('pending_mean_s', 0)} | {r.cell('im_calls', 0)} |"
            )
    lines += ["", *DIRECTION_NOTES, ""]
    lines += [
        "## CLUES calibration",
        "",
        "The reference sample (200 jobs, 6 bursts) on 20 nodes of 4 CPU / 8 GiB, all off; power-on 180 s, "
        "power-off 30 s; the queue is strict FIFO with no backfill, first node that fits, and binds and ends "
        "jobs on the 20 s PERIOD_LIFECYCLE step; RECONSIDER_JOB_TIME 60 s, jobs monitored every 10 s, nodes "
        "every 5 s, scheduling pipeline every 5 s, COOLDOWN_SERVED_REQUESTS 30 s. Run through `--policy "
        "clues` (CLI: `simulate --policy clues --strict-fifo --queue-period 20 --boot-jitter 0`).",
        "",
        "| variant | node-hours: ours vs real | wait p50 (s) | wait p95 (s) | wait mean (s) | completed |",
        "|---|---|---|---|---|---|",
    ]
    for name, result, _ in calibration:
        ref = REFERENCE_FIGURES[name]
        change = (result.node_hours / ref["node_hours"] - 1) * 100
        lines.append(
            f"| {name} | {result.node_hours:.2f} vs {ref['node_hours']} ({change:+.1f} %) | "
            f"{_pct(result.pending_p50_s, ref['p50'])} vs {ref['p50']} | "
            f"{_pct(result.pending_p95_s, ref['p95'])} vs {ref['p95']} | "
            f"{_pct(result.pending_mean_s, ref['mean'])} vs {ref['mean']} | "
            f"{result.jobs_completed}/{result.jobs} |"
        )
    lines += [
        "",
        "Sensitivity to the phase of the polling clocks (job monitor, node monitor and scheduler first run "
        f"at the offsets {', '.join(str(p) for p in PHASES)} s instead of all at 0): range over those runs. "
        "The calibration runs without boot jitter, so it has no seeds: the phases are its spread.",
        "",
        "| variant | node-hours | wait p50 (s) | wait p95 (s) | wait mean (s) |",
        "|---|---|---|---|---|",
    ]
    for name, _, sweep in calibration:
        cells = [
            f"{min(values):.{digits}f}-{max(values):.{digits}f}"
            for values, digits in (
                ([r.node_hours for r in sweep], 2),
                ([r.pending_p50_s for r in sweep], 0),
                ([r.pending_p95_s for r in sweep], 0),
                ([r.pending_mean_s for r in sweep], 0),
            )
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", *CALIBRATION_NOTES, ""]
    out.write_text("\n".join(lines), encoding="utf-8")


def goal_notes(everything: dict[str, dict[str, Runs]]) -> list[str]:
    """Where the goal is out of reach by arithmetic: 0.8 x CLUES at or below the lower bound."""
    out_of_reach = []
    for trace, runs in everything.items():
        bound = runs[OURS].results[0].lower_bound_node_hours
        target = 0.8 * runs["clues"].mean("node_hours")
        if target <= 1.02 * bound:
            out_of_reach.append(f"{trace} ({target:.1f} against a bound of {bound:.1f})")
    return [
        "The goal asks for 0.8 x CLUES's node-hours. Where CLUES itself runs close to the lower bound, 0.8 x "
        "CLUES is at or below the bound, which no policy can reach (every node also boots and shuts down): "
        + ("; ".join(out_of_reach) if out_of_reach else "none of these traces")
        + ". The issue's held-out trace had CLUES at 1.89 x the bound; here only edge-mask-detection and the "
        "reference sample leave CLUES that much room, and those are the runs where the goal can be judged. "
        "`ours before` is the policy before issue 14 on the same seeds.",
    ]


HELD_OUT_NOTES = [
    "The 200 jobs of the CLUES reference sample on its 20 nodes of 4 CPU (boot 180 s, IDLE_TIME 300 s for "
    "both policies), with the scheduler and boot-time model above (not the calibration's batch queue). No "
    "number was tuned on it, but in fairness it is no longer strictly held out: the quiet-spell half of "
    "the demand idle policy (a group that last grew longer ago than a warm node saves) was added after "
    "its first run here showed the rate half alone saving nothing (31.1 node-hours, 0.919 x CLUES); the "
    "rule has no parameter of its own (2 boots + shutdown); it also took edge-mask-detection from 41.0 to "
    "39.0 node-hours and changed no figure on the other three traces. "
    "Its jobs have many request shapes, so few workload classes ever reach the 5 "
    "finished pods an estimate needs, and bursts start on an empty cluster: waiting for room rarely applies; "
    "the demand idle policy is what helps. The rest of the gap to 0.8 x CLUES was not analysed further; "
    "a likely part is the tail of each burst, where a node stays on for its last long job (up to 35 min) "
    "and Job pods cannot be moved.",
]
DIRECTION_NOTES = [
    "**Kept: waiting for room that running pods free (`wait_for_room: break-even`).** The daemon and the "
    "simulator fold every finished pod into a `RuntimeModel` (`deployer/core/elasticity/runtimes.py`): the "
    "latest 64 run times per workload class (namespace, owner kind, the `deployer.io/workload-class`, "
    "`app.kubernetes.io/name`, `app` or Job-name label without its generated suffix, and the requests; a "
    "recorded trace's `class` column). A running pod's remaining time is the 90th percentile of what the "
    "finished pods of its class that ran at least as long ran beyond that; fewer than 5 such pods: unknown. "
    "A pending pod that would grow a group instead waits when a Ready node's free room plus what its pods "
    "of known run time free is expected to hold it by created + limit, where the limit is the node-time a "
    "new node booted for it would cost: boot + idle wait + shutdown of the fastest group that could grow, "
    "plus the pod's typical run time counted up to that overhead (so never more than twice it). Past that "
    "limit (a wrong estimate) it grows a group as before. Unknown classes change nothing (a hypothesis "
    "test checks that the plan is identical). `daemon explain` shows the node and the expected time. "
    "Tried and not kept: the limit of one boot time (`wait_for_room: boot`) is too short on 45 s boards "
    "(under 1 % saved); counting the whole run time (not capped) cut edge-mask-detection to 42.2 "
    "node-hours but let batch-htc pods (20 min-6 h jobs) wait for hours-away room: its p95 rose from 134 s "
    "to 223 s (seed 0).",
    "",
    "**Kept: an idle node stays warm only when it pays (`idle_policy: demand`).** Keeping an empty node "
    "costs its node-time; it saves, when new work needs it, one boot of waiting and the boot and shutdown "
    "of a re-boot (2 boots + shutdown, at one node-second per pod-second of waiting). The planner remembers "
    "the group's latest 8 scale-up rounds. When the group last grew longer ago than that saving (arrivals "
    "come in bursts: a long quiet spell predicts a long one ahead), or its rounds, counted up to now, came "
    "more rarely than once per that saving, an idle node goes after the 60 s floor instead of the "
    "break-even wait; otherwise break-even as before. The scale-down reason says which. Booting a warm "
    "spare ahead (`min_spare_nodes` chosen from the arrival rate) is the same rule's other half and was "
    "not built: outside bursts a new-node demand comes less often than a spare would pay for, and inside "
    "a burst the nodes are booting anyway.",
    "",
    "**Dropped: consolidation (which node empties first).** The scheduler, not the planner, places pods; "
    "ours (first fit, cheapest group first) already packs the lowest nodes first. Every group's min and "
    "min_spare_nodes are 0, so every node past its idle wait goes in the same round, and Job pods may not "
    "be moved (the underutilised scale-down moves only controller pods and is off by default): ordering "
    "which node empties first has nothing to act on in these runs.",
]

CALIBRATION_NOTES = [
    "**How close.** With every poll starting at t = 0 (CLUES's simulated-time event loop registers its "
    "periodic events at start), node-hours are within about 1 % and the p50, p95 and mean waits within "
    "about 1 % of the real CLUES for the three variants, well inside the 10-15 % asked for.",
    "",
    "**Why it differs at all.** (1) CLUES's waits are sums of polling delays (job monitor 10 s, reconsider "
    "> 60 s, scheduling 5 s, node monitor 5 s, DELAY_POWON 10 s, lifecycle 20 s), so the phase of each clock "
    "moves every wait by a few seconds, and a job ending just before or after a 20 s step by 20 s; the sweep "
    "above shows that this alone moves p95 by up to about 13 % and node-hours by a few percent. (2) Not "
    "modelled: CLUES's hooks and database, its recovery of nodes in error (no boot fails in this setup), and "
    "`_purgue_requests_with_served_jobs`, which needs a job seen ATTENDED after a poll and never fires in "
    "monitor mode. (3) Like the real one, our CLUES never ties a request to its job once the job runs: a "
    "request booked on a booting node is served when that node comes up, even if its job started elsewhere; "
    "this is where its extra nodes come from (classroom-burst, mixed-multicloud).",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--out", type=Path, default=BENCH)
    parser.add_argument(
        "--runs",
        type=Path,
        help="pickle of the runs: written after running, read instead of running if present",
    )
    args = parser.parse_args()
    if args.runs is not None and args.runs.exists():
        with args.runs.open("rb") as handle:
            saved = pickle.load(handle)  # noqa: S301 - a file this script wrote
        write_results(args.out / "results.md", *saved)
        print(f"wrote {args.out / 'results.md'} from {args.runs}", file=sys.stderr)
        return
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    traces = {}
    for csv in sorted((BENCH / "traces").glob("*.csv")):
        traces[csv.stem] = run_trace(csv, seeds, args.out / "plots")
        print(f"{csv.stem}: done", file=sys.stderr)
    available = (REFERENCE / "sample.csv").exists()
    held_out = run_held_out(seeds) if available else None
    calibration = calibrate() if available else []
    elapsed = time.perf_counter() - started
    if args.runs is not None:
        with args.runs.open("wb") as handle:
            pickle.dump((traces, held_out, seeds, calibration, elapsed), handle)
    write_results(args.out / "results.md", traces, held_out, seeds, calibration, elapsed)
    print(f"wrote {args.out / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
