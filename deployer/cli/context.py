"""Global CLI options, carried on ``ctx.obj`` (never in module globals)."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from deployer.paths import Paths


@dataclass(frozen=True)
class AppContext:
    paths: Paths
    verbose: int = 0
    json_logs: bool = False


def app_context(ctx: typer.Context) -> AppContext:
    """The root callback's settings, from any sub-command's context."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, AppContext):  # a sub-app invoked on its own (tests)
        from deployer.paths import resolve_paths

        obj = AppContext(paths=resolve_paths())
        root.obj = obj
    return obj
