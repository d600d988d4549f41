"""`deployer demo` end to end: real seconds, and the summary figures, at a given clock speed.

Target: under 180 real seconds at the default speed (10x). Runs in a fresh DEPLOYER_HOME, stops the
embedded IM afterwards, and prints one JSON object.
Usage: python bench/demo_time.py [--speed X]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as home:
        env = {**os.environ, "DEPLOYER_HOME": home}
        command = [sys.executable, "-m", "deployer"]
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [*command, "demo", "--json", "--speed", str(args.speed)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
        finally:
            subprocess.run([*command, "local", "stop"], env=env, capture_output=True, check=False)
        wall = time.perf_counter() - start
    summary = json.loads(done.stdout)
    print(json.dumps({"wall_seconds": round(wall, 1), **summary}, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
