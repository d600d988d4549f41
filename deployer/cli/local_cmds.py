"""``deployer local start|stop|status``: the embedded local IM server (real IM, Dummy VMs, loopback only).

Thin wrapper over ``deployer.adapters.im.local_server``; ``deployer create --cloud local`` starts the
same server by itself when it is not running.
"""

from __future__ import annotations

import typer

from deployer.cli.context import app_context
from deployer.cli.output import info, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("start")
def start(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Loopback port (default: a free one)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Start the local IM on 127.0.0.1 (no-op when it already runs)."""
    from dataclasses import asdict

    from deployer.lifecycle.credentials import local_auth_entries, local_im

    paths = app_context(ctx).paths
    server = local_im(paths)
    was_running = server.status() is not None
    running = server.start(port=port)
    local_auth_entries(paths)  # generate the local credentials now, so the auth file can be used at once
    if json_output:
        print_json({**asdict(running), "already_running": was_running, "data_dir": str(server.root)})
        return
    verb = "already running" if was_running else "started"
    info(f"local IM {verb} at {running.url} (pid {running.pid}); data and logs in {server.root}")


@app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the local IM and every sandbox cluster and daemon (their objects stay for the next start)."""
    from deployer.lifecycle.credentials import local_im
    from deployer.sandbox.processes import stop_all_sandboxes

    paths = app_context(ctx).paths
    for name in stop_all_sandboxes(paths):
        info(f"sandbox cluster of {name} stopped")
    stopped = local_im(paths).stop()
    info("local IM stopped" if stopped else "local IM was not running")


@app.command("status")
def status(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Whether the local IM runs, where, and whether it answers."""
    from deployer.lifecycle.credentials import local_im

    server = local_im(app_context(ctx).paths)
    running = server.status()
    answering = running is not None and server.answering(running)
    if json_output:
        print_json(
            {
                "running": running is not None,
                "answering": answering,
                "url": running.url if running else None,
                "pid": running.pid if running else None,
                "data_dir": str(server.root),
            }
        )
        return
    if running is None:
        info("local IM is not running (start it with `deployer local start`)")
    else:
        health = "answering" if answering else "NOT answering"
        info(f"local IM running at {running.url} (pid {running.pid}, {health})")
