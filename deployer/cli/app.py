"""The ``deployer`` command line: the root Typer app, global options and the single error-to-exit-code map.

Exit codes: 0 ok, 1 user error, 2 usage, 3 remote/service error, 4 timeout, 130 interrupted.
Sub-command modules import heavy libraries (tosca-parser, kubernetes, ansible) inside their commands.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from deployer import __version__
from deployer.cli import (
    class_cmds,
    clouds_cmds,
    daemon_cmds,
    demo_cmds,
    edge_cmds,
    kubeconfig_cmds,
    lifecycle_cmds,
    local_cmds,
    lock_cmds,
    oscar_cmds,
    render_cmds,
    sim_cmds,
    ui_cmds,
)
from deployer.cli.context import AppContext
from deployer.errors import DeployerError


class _ErrorMappingGroup(TyperGroup):
    """Turns our typed errors into one line on stderr and a meaningful exit code; no tracebacks."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DeployerError as err:
            from deployer.cli import output

            output.error(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            from deployer.cli import output

            output.error("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="deployer",
    cls=_ErrorMappingGroup,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold tokens
    # Plain click help and tracebacks: rich's help renderer alone costs more start-up time than all of
    # typer (bench/cli_startup.py). Results and progress still use rich, imported when needed.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="Render, deploy and elastically scale Kubernetes + OSCAR clusters through the IM.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deployer {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-vv for debug)."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Structured JSON log lines on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    from deployer.paths import resolve_paths

    ctx.obj = AppContext(paths=resolve_paths(), verbose=verbose, json_logs=json_logs)
    _configure_logging(verbose, json_logs)


def _configure_logging(verbose: int, json_logs: bool) -> None:
    import logging  # not at module level: --help should not pay for it

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    if json_logs:
        from deployer.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from deployer.logs import RedactingFilter

    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("deployer")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


render_cmds.register(app)
lifecycle_cmds.register(app)
lock_cmds.register(app)
kubeconfig_cmds.register(app)
sim_cmds.register(app)
ui_cmds.register(app)
demo_cmds.register(app)
app.add_typer(local_cmds.app, name="local", help="Run the embedded local IM server (Dummy VMs).")
app.add_typer(clouds_cmds.app, name="clouds", help="Cloud profiles and credentials.")
app.add_typer(edge_cmds.app, name="edge", help="Join and remove edge (Raspberry Pi) nodes with Ansible.")
app.add_typer(daemon_cmds.app, name="daemon", help="The elasticity daemon.")
app.add_typer(oscar_cmds.app, name="oscar", help="OSCAR services from FDL files: validate, apply, run, logs.")
app.add_typer(class_cmds.app, name="class", help="Teaching classes: one cluster per student team.")


def main() -> None:
    app()
