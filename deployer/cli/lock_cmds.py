"""``deployer lock`` and ``deployer export``: lock files that recreate a cluster as it was.

Thin wrappers over ``deployer.lifecycle.lockfile``. ``deployer create LOCK`` needs no command of its own:
``create`` (through ``deployer.lifecycle.prepare``) recognises a lock file and checks it first.
"""

from __future__ import annotations

from pathlib import Path

import typer

from deployer.cli.context import app_context
from deployer.cli.output import info, print_json


def register(app: typer.Typer) -> None:
    app.command("lock")(lock)
    app.command("export")(export)


def lock(
    ctx: typer.Context,
    spec_file: Path | None = typer.Argument(None, help="Cluster spec YAML. Omit to use defaults and flags."),
    output_file: Path = typer.Option(..., "--output", "-o", help="Lock file to write (e.g. lab.lock.yaml)."),
    cloud: str | None = typer.Option(
        None, "--cloud", "-c", help="Cloud (local, a profile). Overrides the spec."
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Cluster name to lock in."),
    overrides: list[str] | None = typer.Option(None, "--set", help="Override a spec field: FIELD=VALUE."),
    workers: int | None = typer.Option(
        None, "--workers", "-w", min=0, help="Initial VMs of the first group."
    ),
    json_output: bool = typer.Option(False, "--json", help="Also print the pins as JSON on stdout."),
) -> None:
    """Resolve and record everything that could drift (template, types commit, versions, images, flavors)."""
    from deployer.core.spec import load_spec
    from deployer.lifecycle.lockfile import build_lock, write_lock

    paths = app_context(ctx).paths
    spec = load_spec(spec_file, list(overrides or []), cloud=cloud, name=name, workers=workers)
    document = build_lock(paths, spec)
    write_lock(output_file, document)
    if json_output:
        print_json(document["pins"])
    source = spec_file or "the default spec"
    info(f"locked {source} into {output_file}; `deployer create {output_file}` recreates it")


def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Deployment name (see `deployer list`)."),
    output_dir: Path = typer.Option(
        Path("."), "--output-dir", "-o", help="Where NAME.spec.yaml and NAME.lock.yaml go."
    ),
    token: str | None = typer.Option(
        None, "--token", help="OIDC access token for the IM.", show_default=False
    ),
) -> None:
    """Write a spec and a lock that recreate an existing deployment as it is now (no secrets)."""
    import yaml

    from deployer.adapters.state.secrets import write_private
    from deployer.lifecycle.lockfile import export_deployment, write_lock

    if token:
        from deployer.logs import register_secret

        register_secret(token)
    spec_data, document = export_deployment(app_context(ctx).paths, name, token=token)
    spec_path = output_dir / f"{name}.spec.yaml"
    lock_path = output_dir / f"{name}.lock.yaml"
    write_private(spec_path, yaml.safe_dump(spec_data, sort_keys=False))
    write_lock(lock_path, document)
    info(f"{name}: wrote {spec_path} and {lock_path}; `deployer create {lock_path} --name NEW` recreates it")
