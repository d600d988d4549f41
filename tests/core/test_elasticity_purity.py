"""The core stays pure: no module under deployer/core imports an I/O library, directly or through another.

Two checks: an AST scan of every import statement in deployer/core (any depth, including imports inside
functions), and a fresh interpreter that imports every core module and lists what got loaded. The runtime
check tolerates ``socket`` only: pydantic's plugin loader reads package metadata through
``importlib.metadata``, whose ``email.utils`` imports ``socket`` without ever opening one.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import deployer.core

FORBIDDEN = {
    "requests",
    "urllib3",
    "kubernetes",
    "ansible",
    "subprocess",
    "socket",
    "urllib",
    "sqlite3",
    "http",
}
CORE = Path(deployer.core.__file__).resolve().parent


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")  # dynamic imports would defeat this check
    return roots


def test_no_core_source_imports_an_io_library():
    sources = sorted(CORE.rglob("*.py"))
    assert CORE / "elasticity" / "planner.py" in sources
    offenders = {
        str(p.relative_to(CORE)): sorted(_imported_roots(p) & (FORBIDDEN | {"__import__"})) for p in sources
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_importing_the_core_loads_no_io_library():
    modules = sorted(m.name for m in pkgutil.walk_packages(deployer.core.__path__, "deployer.core."))
    probe = (
        "import importlib, json, sys\n"
        "base = set(sys.modules)\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - base)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=CORE.parents[1],
    )
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert "deployer" in loaded
    assert sorted(loaded & (FORBIDDEN - {"socket"})) == []
