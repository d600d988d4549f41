"""Randomized crash scenarios for the elasticity daemon: SIGKILL at random steps of scale-ups and scale-downs.

    PYTHONPATH=. .venv/bin/python bench/faults_daemon.py [--seconds 120] [--seed 1]

Each scenario runs the daemon as a real process (``deployer daemon run``) against the real local IM (Dummy
connector, on 127.0.0.1) behind a recording proxy and a fresh loopback Kubernetes API, kills it at a random,
ordered subset of the steps of a scale-up or a scale-down (``tests/daemon/crash.py``), restarts it after
each kill, lets a last process settle the world and counts what must stay zero: duplicate VMs, orphan VMs,
nodes left cordoned, running jobs evicted. ``run(seconds, seed)`` starts scenarios until ``seconds`` have
passed (the last one finishes: each is bounded, about 20-40 s) and returns the counters; ``bench/faults.py``
folds them into its report. Needs the IM server (``pip install 'deployer[local]'``) and only loopback.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.daemon.conftest import create_im_cluster, worker_group_data  # noqa: E402
from tests.daemon.crash import SCENARIOS, Outcome, Step, World, run_scenario  # noqa: E402
from tests.daemon.im_proxy import IMProxy  # noqa: E402
from tests.fixtures.im_server import RunningIM  # noqa: E402
from tests.fixtures.kube_api import FakeKubeAPI  # noqa: E402

COUNTERS = ("duplicate_vms", "orphan_vms", "nodes_left_cordoned", "running_jobs_evicted")


def run(seconds: float, seed: int) -> dict[str, int]:
    """Random daemon crash scenarios for about ``seconds``; the counters (the last four must stay 0)."""
    rng = random.Random(seed)
    totals = dict.fromkeys(("scenarios", "faults_injected", *COUNTERS), 0)
    distinct: set[tuple[str, tuple[str, ...]]] = set()
    with tempfile.TemporaryDirectory(prefix="faults-daemon-") as tmp:
        root = Path(tmp)
        im = RunningIM(root)
        im.start()
        try:
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                kind = rng.choice(sorted(SCENARIOS))
                steps = SCENARIOS[kind]
                chosen = sorted(rng.sample(range(len(steps)), rng.randint(1, len(steps))))
                outcome = _scenario(im, root / f"s{totals['scenarios']}", kind, [steps[i] for i in chosen])
                totals["scenarios"] += 1
                totals["faults_injected"] += len(outcome.kills)
                distinct.add((kind, tuple(outcome.kills)))
                for name in COUNTERS:
                    totals[name] += getattr(outcome, name)
        finally:
            im.stop()
    return {
        "scenarios": totals["scenarios"],
        "distinct_scenarios": len(distinct),
        "faults_injected": totals["faults_injected"],
        **{name: totals[name] for name in COUNTERS},
    }


def _scenario(im: RunningIM, directory: Path, kind: str, kill_at: list[Step]) -> Outcome:
    directory.mkdir(parents=True)
    user = im.new_user(directory)
    cluster = create_im_cluster(im.url, user.entries, worker_group_data(f"f{secrets.token_hex(3)}"))
    api = FakeKubeAPI().start()
    proxy = IMProxy(im.url).start()
    home = directory / "home"
    home.mkdir()
    try:
        world = World(cluster, proxy.url, user.auth_file, api, proxy, home)
        return run_scenario(world, kind, kill_at, user.entries)
    finally:
        proxy.stop()
        api.stop()
        cluster.client.destroy(cluster.infra_id)
        cluster.client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.seed), indent=2))


if __name__ == "__main__":
    main()
