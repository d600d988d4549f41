"""Run every shipped trace under every policy; write bench/results.md and bench/plots/*.png.

    .venv/bin/python bench/policy_compare.py [--seed 0] [--out bench]

For each trace in bench/traces/ (``NAME.csv`` with its cluster ``NAME.yaml``) the four policies run on the
same seed. Our policy is checked against the targets (zero evictions; node-hours at most 1.25 x the lower
bound; p95 pending no worse than CLUES; node-hours at most 0.8 x CLUES on bursty traces), and each miss is
written down with its cause. The CLUES calibration replays the reference sample
(../shared/data/clues-reference) with the reference settings through ``--policy clues``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from deployer.core.elasticity.model import GroupKind, NodeGroup, Resources
from deployer.core.spec import load_spec
from deployer.sim.clues import CluesSettings
from deployer.sim.engine import SimConfig
from deployer.sim.plot import plot_runs
from deployer.sim.run import POLICIES, PolicySettings, SimResult, inputs_from_spec, simulate
from deployer.sim.trace import load_trace

BENCH = Path(__file__).resolve().parent
REFERENCE = BENCH.parent.parent / "shared" / "data" / "clues-reference"
BURSTY = ("classroom-burst", "edge-mask-detection", "mixed-multicloud")

# What the real CLUES did on the reference sample (clues-reference/README.md).
REFERENCE_FIGURES = {
    "defaults": {"node_hours": 34.41, "p50": 251, "p95": 268, "mean": 190},
    "MAX_BOOTING_NODES = 2": {"node_hours": 29.48, "p50": 433, "p95": 1111, "mean": 494},
    "IDLE_TIME = 1800": {"node_hours": 59.93, "p50": 232, "p95": 268, "mean": 168},
}
CALIBRATION_VARIANTS = {
    "defaults": CluesSettings(),
    "MAX_BOOTING_NODES = 2": CluesSettings(max_booting_nodes=2),
    "IDLE_TIME = 1800": CluesSettings(idle_time=1800),
}

# Why a target is missed, found by reading the runs (timelines, per-pod waits); printed only on a miss.
WHY = {
    "lower_bound": (
        "every power cycle costs a boot, `idle_time` (300 s) and a shutdown on top of the work, and a node "
        "stays on for its longest job while the others on it have ended; with short jobs or a trickle load "
        "(one small job keeps a whole node on) that overhead is larger than the 25 % allowed"
    ),
    "p95": (
        "the waiting pods of a steady stream wait for a boot (120-240 s) either way; at p95 both policies sit "
        "in that band and the order flips with the seed (our mean and max wait are lower)"
    ),
    "vs_clues": (
        "both policies boot a node for pending work and keep it `idle_time` after its last pod; CLUES's "
        "60-70 s reaction delay lets running jobs finish and absorb part of a burst, so it boots fewer "
        "nodes for short jobs, at the price of the longer waits in the p95 column; jobs cannot be moved, so "
        "packing cannot reclaim the tails"
    ),
}


def run_trace(csv: Path, seed: int, plots: Path) -> list[SimResult]:
    spec = load_spec(csv.with_suffix(".yaml"))
    groups, settings = inputs_from_spec(spec)
    jobs = load_trace(csv)
    config = SimConfig(seed=seed, record_timeline=True)
    results = [simulate(groups, jobs, name, config, settings) for name in POLICIES]
    edge = [g.name for g in groups if g.kind is not GroupKind.CLOUD]
    plot_runs(results, plots / f"{csv.stem}.png", f"{csv.stem}: {len(jobs)} jobs, seed {seed}", edge_groups=edge)
    return results


def check_targets(trace: str, results: list[SimResult]) -> list[tuple[str, bool, str]]:
    ours = next(r for r in results if r.policy == "deployer")
    clues = next(r for r in results if r.policy == "clues")
    ratio = ours.node_hours / ours.lower_bound_node_hours if ours.lower_bound_node_hours else 0.0
    checks = [
        ("zero evictions", ours.evictions == 0, f"{ours.evictions} evictions", ""),
        ("node-hours <= 1.25 x lower bound", ratio <= 1.25, f"{ratio:.2f} x", "lower_bound"),
        (
            "p95 pending <= clues",
            ours.pending_p95_s <= clues.pending_p95_s,
            f"{ours.pending_p95_s:.0f} s vs {clues.pending_p95_s:.0f} s",
            "p95",
        ),
    ]
    if trace in BURSTY:
        share = ours.node_hours / clues.node_hours if clues.node_hours else 0.0
        checks.append(("node-hours <= 0.8 x clues (bursty)", share <= 0.8, f"{share:.2f} x clues", "vs_clues"))
    return [(name, ok, f"{figure}" + ("" if ok or not why else f": {WHY[why]}")) for name, ok, figure, why in checks]


def calibrate() -> list[tuple[str, SimResult]]:
    groups = (NodeGroup("wn", 0, 20, Resources(4000, 8192, 0, 110), boot_seconds=180),)
    jobs = load_trace(REFERENCE / "sample.csv")
    # The reference queue: strict FIFO, first node that fits, starts and ends on the 20 s lifecycle step.
    config = SimConfig(boot_jitter=0, shutdown_seconds=30, strict_fifo=True, queue_period=20)
    return [
        (name, simulate(groups, jobs, "clues", config, PolicySettings(clues=variant)))
        for name, variant in CALIBRATION_VARIANTS.items()
    ]


def _pct(ours: float, ref: float) -> str:
    return f"{ours:.0f} ({(ours - ref) / ref * 100:+.0f} %)" if ref else f"{ours:.0f}"


def write_results(out: Path, runs: dict[str, list[SimResult]], seed: int, calibration, elapsed: float) -> None:
    lines = [
        "# Elasticity policies compared on the shipped traces",
        "",
        f"Generated by `bench/policy_compare.py --seed {seed}` in {elapsed:.0f} s. Node-hours run from each power-on "
        "request to the end of its power-off; the lower bound is requested cpu-seconds / the largest node's cpus. "
        "Pending = start - submit. Plots: `bench/plots/<trace>.png`.",
        "",
    ]
    for trace, results in runs.items():
        lines += [
            f"## {trace}",
            "",
            f"![{trace}](plots/{trace}.png)",
            "",
            "| policy | completed | node-hours | x lower bound | cost | p50 pending (s) | p95 pending (s) "
            "| max pending (s) | evictions | IM calls | peak nodes |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results:
            ratio = r.node_hours / r.lower_bound_node_hours if r.lower_bound_node_hours else 0.0
            settled = "" if r.settled else " (never settled: cut 4 h after the last job)"
            lines.append(
                f"| {r.policy} | {r.jobs_completed}/{r.jobs}{settled} | {r.node_hours:.1f} | {ratio:.2f} | "
                f"{r.cost:.2f} | {r.pending_p50_s:.0f} | {r.pending_p95_s:.0f} | {r.pending_max_s:.0f} | "
                f"{r.evictions} | {r.im_calls} | {r.peak_nodes} |"
            )
        lines += ["", f"Lower bound: {results[0].lower_bound_node_hours:.1f} node-hours. Targets for `deployer`:", ""]
        for name, ok, note in check_targets(trace, results):
            lines.append(f"- {'met' if ok else '**missed**'}: {name} ({note})")
        lines.append("")

    lines += [
        "## CLUES calibration",
        "",
        "The reference sample (200 jobs, 6 bursts) on 20 nodes of 4 CPU / 8 GiB, all off; power-on 180 s, "
        "power-off 30 s, PERIOD_LIFECYCLE 20 s (the queue binds and ends jobs on that step), strict FIFO with no "
        "backfill, RECONSIDER_JOB_TIME 60 s, monitoring of jobs every 10 s and of nodes every 5 s, scheduling "
        "pipeline every 5 s, COOLDOWN_SERVED_REQUESTS 30 s, run through `--policy clues` "
        "(`simulate --strict-fifo --queue-period 20 --boot-jitter 0`). Ours vs the real CLUES:",
        "",
        "| variant | node-hours | wait p50 (s) | wait p95 (s) | wait mean (s) | completed |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in calibration:
        ref = REFERENCE_FIGURES[name]
        nh = f"{result.node_hours:.2f} vs {ref['node_hours']} ({(result.node_hours / ref['node_hours'] - 1) * 100:+.1f} %)"
        lines.append(
            f"| {name} | {nh} | {_pct(result.pending_p50_s, ref['p50'])} vs {ref['p50']} | "
            f"{_pct(result.pending_p95_s, ref['p95'])} vs {ref['p95']} | {_pct(result.pending_mean_s, ref['mean'])} vs "
            f"{ref['mean']} | {result.jobs_completed}/{result.jobs} |"
        )
    lines += ["", *CALIBRATION_NOTES, ""]
    out.write_text("\n".join(lines), encoding="utf-8")


CALIBRATION_NOTES = [
    "How close: node-hours within 2 % and p50, p95 and mean waits within about 5 % for the defaults and "
    "MAX_BOOTING_NODES = 2; with IDLE_TIME = 1800 node-hours, p50 and mean stay within about 7 % but p95 is "
    "higher (see below).",
    "",
    "Why it differs:",
    "",
    "- **Phase of the clocks.** CLUES's waits are sums of polling delays (job monitor 10 s, reconsider > 60 s, "
    "scheduling 5 s, node monitor 5 s, DELAY_POWON 10 s, lifecycle 20 s). Our timers all start at t = 0; in the "
    "real event loop they start at the moment each periodic event is registered, so every wait shifts by a few "
    "seconds, and a job ending just before or after a 20 s lifecycle step moves by 20 s.",
    "- **IDLE_TIME = 1800, p95.** At about t = 2,500 s the third burst meets a cluster whose first nodes have just "
    "passed 30 idle minutes: our model powers four of them off at t = 2,225-2,270 s, just before the burst, so "
    "the burst fills all 20 nodes and, with strict FIFO, ~10 jobs queue behind a 4-CPU head for 330-630 s. "
    "Those 10 jobs are exactly the top 5 % (p95 335 s vs 268 s). Whether those nodes are still on when the "
    "burst arrives hinges on a few seconds of polling phase; the other figures of that variant agree.",
    "- **Not modelled.** CLUES's hooks, its database, the recovery of nodes in error (no boot fails here), "
    "and the `_purgue_requests_with_served_jobs` path (it needs a job seen ATTENDED after a poll, which "
    "monitor mode does not produce in this setup).",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=BENCH)
    args = parser.parse_args()
    started = time.perf_counter()
    runs = {}
    for csv in sorted((BENCH / "traces").glob("*.csv")):
        runs[csv.stem] = run_trace(csv, args.seed, args.out / "plots")
        print(f"{csv.stem}: done", file=sys.stderr)
    calibration = calibrate() if (REFERENCE / "sample.csv").exists() else []
    write_results(args.out / "results.md", runs, args.seed, calibration, time.perf_counter() - started)
    print(f"wrote {args.out / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
