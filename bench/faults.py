"""Randomized fault scenarios against the real IM: does deployer ever leak, duplicate, undo or lose?

    python bench/faults.py --seconds 120 --seed 1 --json [--daemon-share 0.3]

Starts the real IM server (Dummy connector) on loopback, puts the fault proxy of tests/faults in front of
it, and runs random scenarios until the time is up (it stops by itself): an operation (create, scale up,
scale down, destroy, or two machines scaling two groups at once), a fault kind (5xx, gateway HTML page,
latency, reset before or after forwarding, cut-off body, held request, stall, non-JSON or odd-shaped
200), and which IM call of the operation it hits. After each scenario the user's re-run, then an audit of
the IM itself by id and by tag (tests/faults/scenarios.py). ``--daemon-share`` of the time goes to the
elasticity daemon's crash scenarios (bench/faults_daemon.py: SIGKILL at each step of a scale-up or a
scale-down, then a restart). Prints one JSON object; every count after ``faults_injected`` must be 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults_daemon

from tests.faults.proxy import KINDS, FaultProxy
from tests.faults.scenarios import COUNTERS, LANDING_MARGIN_S, Lab, Scenario, run
from tests.fixtures.im_server import RunningIM

OPERATIONS = ("create", "scale_up", "scale_down", "destroy", "overlap")
# Requests an operation makes before its change (listing, reading the template, the VMs...): a
# call-index fault lands on one of them, or on the change itself.
MAX_CALL_INDEX = 8
# A scenario takes up to about this long (a held create past the landing window is the slowest).
SCENARIO_BUDGET_S = 25.0


def random_scenario(rng: random.Random) -> Scenario:
    operation = rng.choice(OPERATIONS)
    kind = rng.choice(KINDS)
    if operation == "overlap":
        return Scenario(operation, kind)
    call = None if rng.random() < 0.5 else rng.randrange(MAX_CALL_INDEX)
    late = operation == "create" and kind == "hold" and call is None and rng.random() < 0.5
    return Scenario(operation, kind, call, late)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="time budget (it stops by itself)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument(
        "--daemon-share", type=float, default=0.3, help="fraction of the time for daemon crash scenarios"
    )
    args = parser.parse_args()
    daemon_seconds = args.seconds * min(max(args.daemon_share, 0.0), 1.0)
    lifecycle_seconds = args.seconds - daemon_seconds
    rng = random.Random(args.seed)
    os.environ["DEPLOYER_IM_LANDING_MARGIN"] = str(LANDING_MARGIN_S)
    totals: Counter[str] = Counter({name: 0 for name in COUNTERS})
    seen: set[str] = set()
    scenarios = faults = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deployer-faults-") as tmp:
        root = Path(tmp)
        im = RunningIM(root)
        im.start()
        try:
            user = im.new_user(root)
            with FaultProxy(im.url) as proxy:
                (root / "state").mkdir(mode=0o700)
                lab = Lab(im.url, user.entries, proxy, root / "state")
                while time.monotonic() - started + SCENARIO_BUDGET_S < lifecycle_seconds:
                    scenario = random_scenario(rng)
                    before = len([s for s in proxy.log if s.fault])
                    violations = run(lab, scenario)
                    faults += len([s for s in proxy.log if s.fault]) - before
                    scenarios += 1
                    seen.add(scenario.key)
                    totals.update(violations)
                    if not args.json:
                        print(f"{scenario.key:40s} {dict(+violations) or 'clean'}", file=sys.stderr)
        finally:
            im.stop()
    daemon = faults_daemon.run(daemon_seconds, args.seed) if daemon_seconds >= 30 else {}
    result = {
        "seconds": round(time.monotonic() - started, 1),
        "seed": args.seed,
        "scenarios": scenarios + daemon.get("scenarios", 0),
        "distinct_scenarios": len(seen) + daemon.get("distinct_scenarios", 0),
        "faults_injected": faults + daemon.get("faults_injected", 0),
        **{name: totals[name] for name in COUNTERS},
        **{name: daemon.get(name, 0) for name in faults_daemon.COUNTERS},
    }
    print(json.dumps(result, indent=None if args.json else 2))
    violations = [*COUNTERS, *faults_daemon.COUNTERS]
    return 0 if not any(result[name] for name in violations) else 1


if __name__ == "__main__":
    sys.exit(main())
