"""Run the real ``deployer`` command line in a subprocess with its own DEPLOYER_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def deployer(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEPLOYER_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
