"""Generate the benchmark's workload traces and the cluster specs they run with (seeded: same files each run).

    .venv/bin/python bench/traces/gen_traces.py            # rewrites bench/traces/*.csv and *.yaml

Traces (CSV ``submit_s,cpu,memory_mib,duration_s,arch,gpu,kind``):

* ``edge-mask-detection``: a day of camera-frame mask-detection inference (multi-arch image) on four
  Raspberry Pi boards woken by Wake-on-LAN; the diurnal load fits on the boards, four crowd bursts overflow
  to EGI cloud workers (amd64).
* ``classroom-burst``: 30 students start a 45-75 min notebook job within one minute, then nothing.
* ``batch-htc``: a steady Poisson stream of long HTC jobs (20 min to 6 h) for a day: eviction safety matters.
* ``mixed-multicloud``: background load plus three bursts on two clouds: a cheap, slow-booting one with a
  6-VM quota listed first, and a fast, expensive one.

``speed_trace()`` builds the 24 h / 50,000-job load of ``bench/sim_speed.py`` in memory.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import yaml

from deployer.sim.trace import TraceJob, write_trace_csv

HERE = Path(__file__).resolve().parent
HOUR = 3600.0


def _poisson_times(rng: random.Random, start: float, end: float, rate_at) -> list[float]:
    """Arrival times of a non-homogeneous Poisson process by thinning; ``rate_at(t)`` in jobs per second."""
    peak = max(rate_at(start + (end - start) * i / 1000) for i in range(1001))
    times, t = [], start
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return times
        if rng.random() < rate_at(t) / peak:
            times.append(t)


def edge_mask_detection(rng: random.Random) -> list[TraceJob]:
    def rate(t: float) -> float:  # per second: 0.2/min at night, ~2.7/min at the afternoon peak
        hour = (t / HOUR) % 24
        day = max(0.0, math.sin(math.pi * (hour - 6) / 15)) if 6 <= hour <= 21 else 0.0
        return (0.2 + 2.5 * day) / 60

    jobs = [
        TraceJob(round(t, 1), 1000, 768, round(rng.uniform(60, 240)), None)
        for t in _poisson_times(rng, 0, 24 * HOUR, rate)
    ]
    for burst_hour, size in ((8.5, 90), (12.5, 120), (17.5, 110), (21.0, 70)):
        start = burst_hour * HOUR
        jobs += [
            TraceJob(round(start + rng.uniform(0, 180), 1), 1000, 768, round(rng.uniform(90, 300)), None)
            for _ in range(size)
        ]
    return sorted(jobs, key=lambda j: j.submit_s)


def classroom_burst(rng: random.Random) -> list[TraceJob]:
    start = 600.0
    return sorted(
        (
            TraceJob(round(start + rng.uniform(0, 60), 1), 2000, 4096, round(rng.uniform(45, 75) * 60))
            for _ in range(30)
        ),
        key=lambda j: j.submit_s,
    )


def batch_htc(rng: random.Random) -> list[TraceJob]:
    jobs = []
    for t in _poisson_times(rng, 0, 24 * HOUR, lambda _t: 1 / 180):
        cpus = rng.choices((1, 2, 4), weights=(5, 3, 2))[0]
        duration = min(6 * HOUR, max(20 * 60, rng.lognormvariate(math.log(1.5 * HOUR), 0.6)))
        jobs.append(TraceJob(round(t, 1), cpus * 1000, cpus * 2048, round(duration)))
    return jobs


def mixed_multicloud(rng: random.Random) -> list[TraceJob]:
    jobs = [
        TraceJob(round(t, 1), 1000, 2048, round(rng.uniform(10, 30) * 60))
        for t in _poisson_times(rng, 0, 12 * HOUR, lambda _t: 1 / 60)
    ]
    for burst_hour, size in ((2.0, 120), (5.5, 200), (9.0, 150)):
        start = burst_hour * HOUR
        for _ in range(size):
            cpus = rng.choice((1, 2))
            jobs.append(
                TraceJob(
                    round(start + rng.uniform(0, 300), 1),
                    cpus * 1000,
                    cpus * 2048,
                    round(rng.uniform(15, 40) * 60),
                )
            )
    return sorted(jobs, key=lambda j: j.submit_s)


def speed_trace(seed: int = 7, jobs: int = 50_000, hours: float = 24.0) -> list[TraceJob]:
    """A heavy diurnal day for the speed benchmark: ``jobs`` pods peaking at several hundred 8-cpu nodes."""
    rng = random.Random(seed)
    weights = [0.3 + max(0.0, math.sin(math.pi * ((h % 24) - 5) / 16)) for h in range(int(hours))]
    per_hour = [round(jobs * w / sum(weights)) for w in weights]
    per_hour[-1] += jobs - sum(per_hour)
    result = []
    for hour, count in enumerate(per_hour):
        for _ in range(count):
            cpus = rng.choices((1, 2, 4), weights=(6, 3, 1))[0]
            result.append(
                TraceJob(
                    round((hour + rng.random()) * HOUR, 1),
                    cpus * 1000,
                    cpus * 1536,
                    round(rng.uniform(5, 65) * 60),
                    rng.choice((None, None, "amd64")),
                )
            )
    return sorted(result, key=lambda j: j.submit_s)


def speed_spec() -> dict:
    return {
        "name": "sim-speed",
        "worker_groups": [
            {"name": "big", "cpus": 8, "memory": "16 GiB", "min": 0, "max": 500, "cost_per_hour": 0.3}
        ],
    }


_ELASTICITY = {"idle_time": 300, "resync_period": 30, "batch_idle": 1, "batch_max": 10}

SPECS = {
    "edge-mask-detection": {
        "name": "edge-mask-detection",
        "cloud": "egi",
        "worker_groups": [
            {
                "name": "egi",
                "cpus": 4,
                "memory": "8 GiB",
                "arch": "amd64",
                "min": 0,
                "max": 12,
                "cost_per_hour": 0.12,
                "boot_seconds": 180,
            }
        ],
        "edge_groups": [
            {
                "name": "pis",
                "arch": "arm64",
                "power": "wol",
                "cpus": 4,
                "memory": "4 GiB",
                "boot_seconds": 45,
                "hosts": [
                    {"address": f"192.168.1.{10 + i}", "name": f"pi-{i}", "mac": f"dc:a6:32:00:00:0{i}"}
                    for i in range(1, 5)
                ],
            }
        ],
        "elasticity": _ELASTICITY,
    },
    "classroom-burst": {
        "name": "classroom-burst",
        "worker_groups": [
            {"name": "lab", "cpus": 4, "memory": "8 GiB", "min": 0, "max": 20, "cost_per_hour": 0.2}
        ],
        "elasticity": _ELASTICITY,
    },
    "batch-htc": {
        "name": "batch-htc",
        "worker_groups": [
            {"name": "htc", "cpus": 8, "memory": "16 GiB", "min": 0, "max": 30, "cost_per_hour": 0.32}
        ],
        "elasticity": _ELASTICITY,
    },
    "mixed-multicloud": {
        "name": "mixed-multicloud",
        "cloud": "egi",
        "worker_groups": [
            {
                "name": "cheap",
                "cloud": "egi",
                "cpus": 4,
                "memory": "8 GiB",
                "min": 0,
                "max": 6,
                "cost_per_hour": 0.05,
                "boot_seconds": 240,
            },
            {
                "name": "fast",
                "cloud": "aws",
                "cpus": 4,
                "memory": "8 GiB",
                "min": 0,
                "max": 30,
                "cost_per_hour": 0.4,
                "boot_seconds": 90,
            },
        ],
        "elasticity": _ELASTICITY,
    },
}

GENERATORS = {
    "edge-mask-detection": (edge_mask_detection, 11),
    "classroom-burst": (classroom_burst, 12),
    "batch-htc": (batch_htc, 13),
    "mixed-multicloud": (mixed_multicloud, 14),
}


def main(out_dir: Path = HERE) -> None:
    for name, (generate, seed) in GENERATORS.items():
        jobs = generate(random.Random(seed))
        write_trace_csv(out_dir / f"{name}.csv", jobs)
        header = f"# Cluster for the {name} trace (generated by gen_traces.py; edit there).\n"
        (out_dir / f"{name}.yaml").write_text(
            header + yaml.safe_dump(SPECS[name], sort_keys=False), encoding="utf-8"
        )
        print(f"{name}: {len(jobs)} jobs", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
