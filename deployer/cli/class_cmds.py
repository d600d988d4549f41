"""``deployer class ...``: one cluster per student team (create, status, destroy).

Thin wrappers over ``deployer.lifecycle.classroom``. Progress goes to stderr, one line per team: a live
table on a terminal, one log line per change otherwise. Ctrl-C stops new creates and the follows, and
the command exits 130 once every create request already sent is recorded.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import typer

from deployer.cli.context import app_context
from deployer.cli.output import LiveArea, info, print_json, table, warn

app = typer.Typer(no_args_is_help=True)

PREFIX_ARG = typer.Argument(..., help="The class prefix given at `class create`.")
TOKEN_OPT = typer.Option(
    None, "--token", help="OIDC access token for the IM and token-based clouds.", show_default=False
)


class _TeamProgress(LiveArea):
    """One line per team: a live table on a terminal, a plain log line per change otherwise."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._lines: dict[int, tuple[str, str]] = {}
        self._lock = threading.Lock()  # teams report from their own threads
        super().__init__()

    def render(self) -> Any:
        from rich.table import Table

        tbl = Table(title=self._title, show_edge=False)
        for column in ("team", "cluster", "progress"):
            tbl.add_column(column)
        for team, (name, message) in sorted(self._lines.items()):
            tbl.add_row(str(team), name, message)
        return tbl

    def event(self, team: int, name: str, message: str) -> None:
        with self._lock:
            if self._lines.get(team) == (name, message):
                return
            self._lines[team] = (name, message)
            if self.live:
                self.refresh()
            else:
                info(f"{name}: {message}")


def _register_token(token: str | None) -> None:
    if token:
        from deployer.logs import register_secret

        register_secret(token)


def _default_prefix(spec_file: Path | None) -> str:
    import re

    stem = spec_file.stem if spec_file is not None else "class"
    cleaned = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")[:32].strip("-")
    return cleaned if cleaned[:1].isalpha() else f"class-{cleaned}"[:32].strip("-")


@app.command("create")
def create(
    ctx: typer.Context,
    spec_file: Path | None = typer.Argument(None, help="Cluster spec YAML, the same for every team."),
    teams: int = typer.Option(..., "--teams", "-n", min=1, help="Number of teams (one cluster each)."),
    prefix: str | None = typer.Option(
        None, "--prefix", "-p", help="Class name; clusters are PREFIX-01.. (default: the spec file name)."
    ),
    parallel: int = typer.Option(4, "--parallel", "-k", min=1, help="Clusters created at the same time."),
    retries: int = typer.Option(2, "--retries", min=0, help="Retries of a failed create, per team."),
    roster_dir: Path = typer.Option(
        Path("."), "--roster-dir", help="Where PREFIX-roster.csv and PREFIX-roster.md go (mode 0600)."
    ),
    cloud: str | None = typer.Option(
        None, "--cloud", "-c", help="Cloud (local, a profile). Overrides the spec."
    ),
    overrides: list[str] | None = typer.Option(None, "--set", help="Override a spec field: FIELD=VALUE."),
    im_url: str | None = typer.Option(None, "--im-url", help="IM REST endpoint (default: the profile's)."),
    auth_file: Path | None = typer.Option(None, "--auth-file", help="IM auth file (im_client format)."),
    timeout: float = typer.Option(1800.0, "--timeout", min=1, help="Seconds to wait for each cluster."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the IM's TLS certificate."),
    token: str | None = TOKEN_OPT,
    json_output: bool = typer.Option(False, "--json", help="Print the results as JSON (secrets masked)."),
) -> None:
    """Create one cluster per team; a re-run resumes and creates only what is missing."""
    from deployer.errors import RemoteError
    from deployer.lifecycle.classroom import Cancelled, ClassOptions, create_class, write_roster

    paths = app_context(ctx).paths
    _register_token(token)
    chosen = prefix or _default_prefix(spec_file)
    options = ClassOptions(
        prefix=chosen,
        teams=teams,
        spec_file=spec_file,
        cloud=cloud,
        overrides=tuple(overrides or ()),
        im_url=im_url,
        auth_file=auth_file,
        token=token,
        insecure=insecure,
        parallel=parallel,
        retries=retries,
        timeout=timeout,
    )
    cancel = threading.Event()
    try:
        with _TeamProgress(f"class {chosen}") as progress:
            results = create_class(paths, options, on_event=progress.event, cancel=cancel)
    except (Cancelled, KeyboardInterrupt):
        info(
            f"class {chosen}: interrupted; every cluster submitted so far is recorded. Run the same "
            f"`deployer class create` again to resume, or `deployer class destroy {chosen} --yes`"
        )
        raise typer.Exit(130) from None
    csv_path, md_path = write_roster(roster_dir, chosen, results)
    failed = [r for r in results if r.status != "ready"]
    if json_output:
        print_json(
            {
                "prefix": chosen,
                "roster": {"csv": str(csv_path), "markdown": str(md_path)},
                "teams": [
                    {
                        "team": r.team,
                        "name": r.name,
                        "status": r.status,
                        "attempts": r.attempts,
                        "error": r.error,
                        "infrastructure_id": r.infrastructure_id,
                    }
                    for r in results
                ],
            }
        )
    else:
        table(
            ["team", "cluster", "status", "attempts", "error"],
            [[r.team, r.name, r.status, r.attempts, r.error or ""] for r in results],
            title=f"class {chosen}",
        )
    info(f"roster (credentials, mode 0600): {csv_path} and {md_path}")
    if failed:
        names = ", ".join(r.name for r in failed)
        raise RemoteError(
            f"class {chosen}: {len(failed)} of {len(results)} clusters failed ({names}); "
            "run the same command again to retry them"
        )


@app.command("status")
def status(
    ctx: typer.Context,
    prefix: str = PREFIX_ARG,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    token: str | None = TOKEN_OPT,
) -> None:
    """Every team's cluster at a glance: membership, IM state, endpoints (secrets masked)."""
    from dataclasses import asdict

    from deployer.lifecycle.classroom import class_status

    _register_token(token)
    rows = class_status(app_context(ctx).paths, prefix, token=token)
    if json_output:
        print_json({"prefix": prefix, "teams": [asdict(row) for row in rows]})
        return
    table(
        ["team", "cluster", "member", "IM state", "infrastructure", "kubernetes API", "problem"],
        [
            [
                r.team,
                r.name,
                r.membership,
                r.state or "",
                r.infrastructure_id or "",
                r.endpoints.get("kubernetes_api_endpoint", ""),
                r.problem or "",
            ]
            for r in rows
        ],
        title=f"class {prefix}",
    )


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    prefix: str = PREFIX_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    parallel: int = typer.Option(4, "--parallel", "-k", min=1, help="Clusters destroyed at the same time."),
    token: str | None = TOKEN_OPT,
) -> None:
    """Destroy every cluster of the class (only those), verify they are gone, report leftovers."""
    import sys

    from deployer.adapters.state.classes import ClassStore
    from deployer.errors import RemoteError, UserError
    from deployer.lifecycle.classroom import destroy_class

    paths = app_context(ctx).paths
    _register_token(token)
    found = ClassStore(paths.state_db).find(prefix)
    if found is None:
        info(f"class {prefix}: no such class here; nothing to destroy")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"destroying class {prefix} needs confirmation: pass --yes")
        typer.confirm(f"Destroy the {found.teams} clusters of class {prefix}?", abort=True)
    with _TeamProgress(f"class {prefix}: destroy") as progress:
        report = destroy_class(paths, prefix, on_event=progress.event, token=token, parallel=parallel)
    if report is None:
        info(f"class {prefix}: no such class here; nothing to destroy")
        return
    info(
        f"class {prefix}: {len(report.destroyed)} destroyed, {len(report.already_gone)} already gone, "
        f"{len(report.leftovers)} left over"
    )
    if report.leftovers:
        for line in report.leftovers:
            warn(f"left over: {line}")
        raise RemoteError(
            f"class {prefix}: {len(report.leftovers)} clusters are not destroyed; run the command again"
        )
