"""How long the simulator takes on a 24 h trace of 50,000 jobs on up to 500 nodes (target: under 60 s).

    .venv/bin/python bench/sim_speed.py [--policy deployer] [--jobs 50000] [--json]

Prints the wall time of one run (trace generation excluded) with the run's figures, so a regression in
the simulator or in ``plan()`` shows up as a number, never as a flaky timed test.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "traces"))

from gen_traces import speed_spec, speed_trace

from deployer.core.spec import validate_spec
from deployer.sim.engine import SimConfig
from deployer.sim.run import POLICIES, inputs_from_spec, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", choices=POLICIES, default="deployer")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    jobs = speed_trace(jobs=args.jobs)
    groups, settings = inputs_from_spec(validate_spec(speed_spec()))
    started = time.perf_counter()
    result = simulate(groups, jobs, args.policy, SimConfig(seed=1), settings)
    elapsed = time.perf_counter() - started
    figures = {
        "policy": args.policy,
        "jobs": len(jobs),
        "max_nodes": sum(g.max_size for g in groups),
        "simulated_hours": round(result.end_s / 3600, 2),
        "wall_seconds": round(elapsed, 2),
        "plan_calls": result.decisions,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_nodes": result.peak_nodes,
        "node_hours": round(result.node_hours, 1),
        "pending_p95_s": round(result.pending_p95_s, 1),
        "evictions": result.evictions,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print(
            f"{args.policy}: {len(jobs)} jobs over {figures['simulated_hours']} h on up to "
            f"{figures['max_nodes']} nodes (peak {result.peak_nodes} on) simulated in {elapsed:.1f} s "
            f"({result.decisions} plan() calls, peak RSS {figures['peak_rss_mib']} MiB; target < 60 s)"
        )


if __name__ == "__main__":
    main()
