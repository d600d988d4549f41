"""ansible-lint (production profile, offline) and yamllint are clean on ansible/ (configs live there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (pip install '.[test]')")
    return str(path)


def test_yamllint_is_clean() -> None:
    done = subprocess.run(
        [_tool("yamllint"), "--strict", "."], cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ansible_lint_production_profile_is_clean() -> None:
    done = subprocess.run(
        [_tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=ANSIBLE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr
