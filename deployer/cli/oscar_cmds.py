"""`deployer oscar ...`: validate and apply FDL files, list, remove, invoke services, read job logs.

Thin layer over ``deployer.lifecycle.oscar``. Every command except ``validate`` reaches one OSCAR:
``--cluster NAME`` (the deployment's ``oscar_endpoint`` output and the password deployer keeps), or
``--endpoint URL`` with ``--user``/``--password-env VAR`` or ``--token``. Results go to stdout (table or
``--json``), messages to stderr; passwords and tokens are never printed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from deployer.cli.context import app_context
from deployer.cli.output import info, print_json, table, warn

if TYPE_CHECKING:
    from deployer.lifecycle.oscar import OscarTarget

app = typer.Typer(no_args_is_help=True)

FDL_ARG = typer.Argument(..., help="FDL file (functions: oscar: - <cluster-id>: {service}).")
SERVICE_ARG = typer.Argument(..., help="OSCAR service name (see `deployer oscar list`).")
JSON_OPT = typer.Option(False, "--json", help="Machine-readable output on stdout.")
CLUSTER_OPT = typer.Option(None, "--cluster", help="Deployment name: its OSCAR endpoint and stored password.")
ENDPOINT_OPT = typer.Option(
    None, "--endpoint", help="OSCAR API base URL (with --cluster: overrides the deployment's output)."
)
USER_OPT = typer.Option("oscar", "--user", help="OSCAR user for basic auth (with --endpoint).")
PASSWORD_ENV_OPT = typer.Option(
    None, "--password-env", metavar="VAR", help="Environment variable that holds the OSCAR password."
)
TOKEN_OPT = typer.Option(None, "--token", help="OIDC access token instead of a password.", show_default=False)
INSECURE_OPT = typer.Option(False, "--insecure", help="Do not verify OSCAR's TLS certificate (warns).")
INPUT_OPT = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help="File sent to the service.")


def _target(
    ctx: typer.Context,
    cluster: str | None,
    endpoint: str | None,
    user: str,
    password_env: str | None,
    token: str | None,
    insecure: bool,
) -> OscarTarget:
    import os

    from deployer.adapters.oscar.client import Credentials
    from deployer.errors import UserError
    from deployer.lifecycle.oscar import OscarTarget, cluster_target

    if insecure:
        warn("not verifying OSCAR's TLS certificate (--insecure)")
    if cluster is not None:
        target = cluster_target(app_context(ctx).paths, cluster, endpoint=endpoint, verify=not insecure)
        return target if token is None else OscarTarget(target.url, Credentials(token=token), target.verify)
    if endpoint is None:
        raise UserError(
            "say which OSCAR: --cluster NAME, or --endpoint URL with --password-env VAR or --token"
        )
    if token is not None:
        return OscarTarget(endpoint, Credentials(token=token), not insecure)
    if password_env is None:
        raise UserError("--endpoint needs credentials: --user USER --password-env VAR, or --token TOKEN")
    password = os.environ.get(password_env)
    if not password:
        raise UserError(f"--password-env {password_env}: that environment variable is not set or empty")
    return OscarTarget(endpoint, Credentials(user=user, password=password), not insecure)


_TARGET_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("cluster", str | None, CLUSTER_OPT),
    ("endpoint", str | None, ENDPOINT_OPT),
    ("user", str, USER_OPT),
    ("password_env", str | None, PASSWORD_ENV_OPT),
    ("token", str | None, TOKEN_OPT),
    ("insecure", bool, INSECURE_OPT),
)


def _reaches_oscar(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the options that say which OSCAR to reach; it receives the resolved ``target``."""
    signature = inspect.signature(command)
    kept = [p for name, p in signature.parameters.items() if name != "target"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in _TARGET_OPTIONS
    ]
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

    @functools.wraps(command)
    def with_target(ctx: typer.Context, **values: Any) -> None:
        options = {name: values.pop(name) for name, _, _ in _TARGET_OPTIONS}
        command(target=_target(ctx, **options), **values)

    annotations = {k: v for k, v in command.__annotations__.items() if k != "target"}
    annotations.update({name: annotation for name, annotation, _ in _TARGET_OPTIONS}, ctx=typer.Context)
    with_target.__annotations__ = annotations
    with_target.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[context, *kept, *added]
    )
    return with_target


@app.command()
def validate(fdl_file: Path = FDL_ARG, json_output: bool = JSON_OPT) -> None:
    """Check an FDL file and its scripts offline (exit 1 naming the field and the fix)."""
    from deployer.lifecycle.oscar import load_fdl

    loaded = load_fdl(fdl_file)
    rows = [
        {"cluster_id": s.cluster_id, "name": s.name, "image": s.definition["image"], "script": s.script_path}
        for s in loaded.fdl.services
    ]
    if json_output:
        print_json({"file": str(fdl_file), "valid": True, "services": rows})
        return
    table(["cluster id", "service", "image", "script"], [list(r.values()) for r in rows], title=str(fdl_file))
    info(f"{fdl_file}: valid ({len(rows)} services)")


@app.command()
@_reaches_oscar
def apply(
    target: OscarTarget,
    fdl_file: Path = FDL_ARG,
    fdl_cluster: str | None = typer.Option(
        None, "--fdl-cluster", help="Apply only the services under this FDL cluster id."
    ),
    json_output: bool = JSON_OPT,
) -> None:
    """Create or update the FDL's services (GET, then POST or PUT): applying twice never duplicates."""
    from deployer.lifecycle.oscar import apply_services, load_fdl

    loaded = load_fdl(fdl_file)
    payloads = loaded.payloads(fdl_cluster)
    with target.client() as client:
        applied = apply_services(client, payloads)
    for item in applied:
        if item.warning:
            warn(f"{item.name}: {item.warning}")
    if json_output:
        print_json({"endpoint": target.url, "applied": [vars(a) for a in applied]})
        return
    table(["service", "action"], [[a.name, a.action] for a in applied], title=target.url)


def _summary(service: dict[str, Any]) -> dict[str, Any]:
    """What `list` shows of a service: never its token, storage credentials or environment."""

    def paths(key: str) -> list[str]:
        return [f"{io.get('storage_provider')}:{io.get('path')}" for io in service.get(key) or []]

    return {
        "name": service.get("name"),
        "image": service.get("image"),
        "cpu": service.get("cpu"),
        "memory": service.get("memory"),
        "cluster_id": service.get("cluster_id"),
        "input": paths("input"),
        "output": paths("output"),
    }


@app.command("list")
@_reaches_oscar
def list_services(
    target: OscarTarget,
    json_output: bool = JSON_OPT,
) -> None:
    """The OSCAR services of a cluster (name, image, resources, buckets)."""
    with target.client() as client:
        services = sorted((_summary(s) for s in client.list_services()), key=lambda s: str(s["name"]))
    if json_output:
        print_json(services)
        return
    table(
        ["service", "image", "cpu", "memory", "input", "output"],
        [
            [s["name"], s["image"], s["cpu"], s["memory"], " ".join(s["input"]), " ".join(s["output"])]
            for s in services
        ],
        title=target.url,
    )


@app.command()
@_reaches_oscar
def remove(
    target: OscarTarget,
    service: str = SERVICE_ARG,
) -> None:
    """Remove a service (already absent counts as done)."""
    from deployer.errors import RemoteNotFound

    with target.client() as client:
        try:
            client.delete_service(service)
        except RemoteNotFound:
            info(f"{service}: not on OSCAR at {target.url}; nothing to remove")
            return
    info(f"{service}: removed")


@app.command()
@_reaches_oscar
def run(
    target: OscarTarget,
    service: str = SERVICE_ARG,
    input_file: Path = INPUT_OPT,
    output_file: Path | None = typer.Option(None, "--output", "-o", help="Write the service's output here."),
    timeout: float = typer.Option(300.0, "--timeout", min=1, help="Seconds to wait for the answer."),
) -> None:
    """Invoke a service synchronously with a file; its output goes to --output or stdout."""
    import sys

    from deployer.errors import UserError

    payload = base64.b64encode(input_file.read_bytes())
    with target.client() as client:
        answer = client.run(service, payload, read_timeout=timeout)
    result = _decode_output(answer)
    if output_file is not None:
        output_file.write_bytes(result)
        info(f"{service}: {len(result)} bytes written to {output_file}")
        return
    try:
        text = result.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"{service} returned {len(result)} bytes of binary output; pass --output FILE"
        ) from None
    sys.stdout.write(text)


def _decode_output(answer: bytes) -> bytes:
    """OSCAR answers with the base64 of the output file, or, without one, the plain log text."""
    compact = b"".join(answer.split())
    try:
        return base64.b64decode(compact, validate=True) if compact else b""
    except (binascii.Error, ValueError):
        return answer


@app.command()
@_reaches_oscar
def job(
    target: OscarTarget,
    service: str = SERVICE_ARG,
    input_file: Path = INPUT_OPT,
    json_output: bool = JSON_OPT,
) -> None:
    """Submit an asynchronous job with a file; prints the job's name when OSCAR lists it."""
    payload = base64.b64encode(input_file.read_bytes())
    with target.client() as client:
        # OSCAR does not return the job's name: tell it by comparing the listings around the submission.
        before = {j.name for j in client.list_jobs(service)}
        client.job(service, payload)
        new = [j.name for j in client.list_jobs(service) if j.name not in before]
    name = new[0] if len(new) == 1 else None
    if json_output:
        print_json({"service": service, "job": name})
        return
    if name is None:
        info(f"{service}: job submitted; see `deployer oscar logs {service}` for its name")
    else:
        info(f"{service}: job {name} submitted")


@app.command()
@_reaches_oscar
def logs(
    target: OscarTarget,
    service: str = SERVICE_ARG,
    job_name: str | None = typer.Argument(None, metavar="[JOB]", help="One job's log (else: the jobs)."),
    json_output: bool = JSON_OPT,
) -> None:
    """A service's jobs with their status, or one job's log."""
    import sys

    with target.client() as client:
        if job_name is not None:
            text = client.job_logs(service, job_name)
            if json_output:
                print_json({"service": service, "job": job_name, "logs": text})
            else:
                sys.stdout.write(text)
            return
        jobs = client.list_jobs(service)
    if json_output:
        print_json([vars(j) for j in jobs])
        return
    table(
        ["job", "status", "created", "started", "finished"],
        [[j.name, j.status, j.creation_time, j.start_time, j.finish_time] for j in jobs],
        title=service,
    )
