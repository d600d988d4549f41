"""`deployer ui`: the local web dashboard. Starlette and uvicorn are imported only here (the ``ui`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer

from deployer.cli import output
from deployer.cli.context import app_context

_DEFAULT_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results.md"


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless --token)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="DEPLOYER_UI_TOKEN",
        help="Access token asked at sign-in; required with a non-loopback --host. Prefer the environment "
        "variable: a flag shows in the process list.",
        show_default=False,
    ),
    daemon_metrics: list[str] = typer.Option(
        [],
        "--daemon-metrics",
        help="CLUSTER=URL: a running daemon's /metrics (daemon run --metrics-port) for live figures.",
    ),
    im_timeout: float = typer.Option(
        10.0, "--im-timeout", min=0.1, help="Seconds a page waits for the IM before saying it is slow."
    ),
    results: Path | None = typer.Option(
        None,
        "--results",
        help="Simulator results: a results.md like bench's (the default, in a checkout) or the JSON of "
        "`simulate --json` (its --plot PNG beside it, same name).",
    ),
) -> None:
    """Serve the web dashboard: deployments, elasticity, simulator results; scale, destroy, add edge hosts."""
    from deployer.errors import UserError

    try:
        from deployer.ui.app import UISettings
        from deployer.ui.live import parse_targets
        from deployer.ui.server import serve
    except ImportError as err:
        raise UserError(
            f"the dashboard needs the ui extra ({err.name} is missing): pip install 'deployer[ui]'"
        ) from None
    if token:
        from deployer.logs import register_secret

        register_secret(token)
    settings = UISettings(
        paths=app_context(ctx).paths,
        token=token,
        daemon_metrics=parse_targets(daemon_metrics),
        im_timeout=im_timeout,
        results_file=results or (_DEFAULT_RESULTS if _DEFAULT_RESULTS.is_file() else None),
    )
    serve(settings, host, port, announce=output.info)
