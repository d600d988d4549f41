"""CLI start-up: `deployer --help` against a bare `import typer`, measured in the same run.

Target: the ratio stays under 1.5. Prints JSON with medians in milliseconds.
Usage: python bench/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# As on a user's machine: byte-code caches are written on the first run and used after. (Some sandboxes set
# PYTHONDONTWRITEBYTECODE, which would make every deployer start recompile its modules while the installed
# typer still loads from its caches: not a fair comparison.)
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _median_ms(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=_ENV)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    deployer = shutil.which("deployer") or str(Path(sys.executable).with_name("deployer"))
    # Warm the page cache and .pyc files so both sides are measured alike.
    _median_ms([deployer, "--help"], 2)
    _median_ms([sys.executable, "-c", "import typer"], 2)
    typer_ms = _median_ms([sys.executable, "-c", "import typer"], args.runs)
    help_ms = _median_ms([deployer, "--help"], args.runs)
    python_ms = _median_ms([sys.executable, "-c", "pass"], args.runs)
    print(
        json.dumps(
            {
                "runs": args.runs,
                "python_bare_ms": round(python_ms, 1),
                "import_typer_ms": round(typer_ms, 1),
                "deployer_help_ms": round(help_ms, 1),
                "ratio_help_vs_typer": round(help_ms / typer_ms, 2),
                "target_ratio": 1.5,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
