"""``deployer render`` and ``deployer validate``: spec + flags to TOSCA, offline.

``render`` prints the placement findings (``deployer.core.placement.hybrid_findings``) as warnings.
"""

from __future__ import annotations

from pathlib import Path

import typer

from deployer.cli.context import app_context
from deployer.cli.output import info, print_json, warn

SPEC_ARG = typer.Argument(None, help="Cluster spec YAML. Omit to use defaults and flags only.")
CLOUD_OPT = typer.Option(None, "--cloud", "-c", help="Cloud profile (local, egi, ...). Overrides the spec.")
NAME_OPT = typer.Option(None, "--name", "-n", help="Cluster name. Generated once and reused if absent.")
SET_OPT = typer.Option(None, "--set", help="Override a spec field: FIELD=VALUE (repeatable).")
WORKERS_OPT = typer.Option(None, "--workers", "-w", min=0, help="Initial VMs of the first worker group.")


def register(app: typer.Typer) -> None:
    app.command("render")(render)
    app.command("validate")(validate)


def render(
    ctx: typer.Context,
    spec_file: Path | None = SPEC_ARG,
    cloud: str | None = CLOUD_OPT,
    name: str | None = NAME_OPT,
    overrides: list[str] | None = SET_OPT,
    workers: int | None = WORKERS_OPT,
    types: str | None = typer.Option(
        None, "--types", help="How the IM gets the type definitions: local (file path) or remote (URL)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the TOSCA (with secrets, mode 0600) here instead of stdout."
    ),
    show_secrets: bool = typer.Option(False, "--show-secrets", help="Print real secrets on stdout."),
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip tosca-parser validation."),
) -> None:
    """Render the cluster's TOSCA for the Infrastructure Manager (validated offline with tosca-parser)."""
    from deployer.adapters.state.secrets import write_private
    from deployer.adapters.tosca import validate_tosca
    from deployer.errors import UserError
    from deployer.lifecycle.prepare import prepare_cluster

    extra = list(overrides or [])
    if types is not None:
        if types not in ("local", "remote"):
            raise UserError(f"--types {types}: expected 'local' or 'remote'")
        extra.append(f"types={types}")
    prepared = prepare_cluster(
        app_context(ctx).paths, spec_file, cloud=cloud, name=name, overrides=extra, workers=workers
    )
    for finding in prepared.findings:  # only create refuses to go on; rendering is a preview
        warn(finding.message)
    if not no_validate:
        validate_tosca(prepared.tosca_redacted, source=str(spec_file or "rendered TOSCA"))
    if output is not None:
        write_private(output, prepared.tosca)
        info(f"wrote {output} (cluster {prepared.spec.name}; contains secrets, mode 0600)")
        return
    typer.echo(prepared.tosca if show_secrets else prepared.tosca_redacted, nl=False)


def validate(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A cluster spec or a TOSCA file."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable result."),
) -> None:
    """Validate a cluster spec (and the TOSCA it renders) or a TOSCA file, offline."""
    from deployer.adapters.tosca import is_tosca_file, validate_tosca
    from deployer.core.render import RenderOptions, redacted, render_tosca
    from deployer.core.spec import load_spec

    if is_tosca_file(file):
        kind = "tosca"
        nodes = validate_tosca(file.read_text(encoding="utf-8"), source=str(file))
    else:
        kind = "spec"
        spec = load_spec(file)
        # Placeholders for what create would generate: validation must not persist anything.
        spec = redacted(spec.model_copy(update={"name": spec.name or "validate"}))
        from deployer.lifecycle.prepare import types_mode

        text = render_tosca(spec, RenderOptions(types=types_mode(spec), simulated=spec.cloud == "local"))
        nodes = validate_tosca(text, source=f"{file} (rendered)")
    if json_output:
        print_json({"file": str(file), "kind": kind, "valid": True, "nodes": nodes})
    else:
        info(f"{file}: valid {kind} ({len(nodes)} TOSCA nodes)")
