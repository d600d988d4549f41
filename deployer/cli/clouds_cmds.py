"""`deployer clouds add|list|show|remove|check`: cloud profiles in ``DEPLOYER_HOME/clouds.yaml``.

Thin: parsing options and printing. Profiles live in ``deployer.adapters.clouds.profiles``; ``check``
runs ``deployer.adapters.clouds.discovery.check_cloud`` (openstacksdk and the IM's cloud endpoints).
Read commands take ``--json``. Stored secrets are printed as ``***``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from deployer.cli import output
from deployer.cli.context import app_context

if TYPE_CHECKING:
    from deployer.adapters.clouds.discovery import CheckReport
    from deployer.adapters.clouds.profiles import CloudProfile
    from deployer.core.placement import FlavorChoice

app = typer.Typer(no_args_is_help=True)

# Option name -> profile field. Only references to secrets have options of their own; a literal secret
# can still be stored with --set (the file stays 0600 and `show` masks it).
_FIELD_OPTIONS = (
    "site",
    "vo",
    "project_id",
    "keystone_url",
    "os_cloud",
    "region",
    "aws_profile",
    "im_url",
    "im_username",
    "im_password_env",
    "token_env",
    "token_file",
    "oidc_agent_account",
    "image",
)


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Profile name: lowercase letters, digits and '-'."),
    kind: str = typer.Option(..., "--kind", help="egi, openstack, aws or local."),
    site: str = typer.Option(None, help="egi: the EGI site (e.g. CESGA, IFCA-LCG2)."),
    vo: str = typer.Option(None, help="egi: the Virtual Organisation (e.g. vo.access.egi.eu)."),
    project_id: str = typer.Option(None, help="egi: the site's project id for the VO."),
    keystone_url: str = typer.Option(None, help="egi: the site's Keystone URL (IM talks to it directly)."),
    os_cloud: str = typer.Option(None, help="openstack: entry of OpenStack's clouds.yaml (else OS_* env)."),
    region: str = typer.Option(None, help="openstack/aws: region."),
    aws_profile: str = typer.Option(None, help="aws: profile in ~/.aws/credentials (else AWS_* env)."),
    im_url: str = typer.Option(None, help="IM endpoint (egi default: https://im.egi.eu/im)."),
    im_username: str = typer.Option(None, help="IM username (else the access token authenticates)."),
    im_password_env: str = typer.Option(None, help="Env var holding the IM password."),
    token_env: str = typer.Option(None, help="Env var holding the access token."),
    token_file: str = typer.Option(None, help="File holding the access token."),
    oidc_agent_account: str = typer.Option(None, help="oidc-agent account that issues the token."),
    image: str = typer.Option(None, help="Default VM image (name/id, or a full egi:// ost:// aws:// URL)."),
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any other field KEY=VALUE (e.g. issuer, client_id, refresh_token_env)."),
    ] = None,
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing profile."),
) -> None:
    """Add (or with --replace, overwrite) a cloud profile."""
    from deployer.adapters.clouds.profiles import CloudProfile, add_profile
    from deployer.errors import UserError

    given = locals()
    fields = {key: given[key] for key in _FIELD_OPTIONS if given[key]}
    for assignment in settings or []:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {assignment}: expected KEY=VALUE")
        fields[key.strip()] = value.strip()
    profile = CloudProfile(name, kind, fields)
    paths = app_context(ctx).paths
    add_profile(paths, profile, replace=replace)
    output.info(f"cloud profile '{name}' ({kind}) saved in {paths.clouds_file}; IM auth id {profile.auth_id}")


@app.command("list")
def list_profiles(
    ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="JSON output.")
) -> None:
    """List the cloud profiles (secrets masked)."""
    from deployer.adapters.clouds.profiles import BUILTIN_LOCAL, im_url_for, load_profiles

    profiles = load_profiles(app_context(ctx).paths)
    profiles.setdefault(BUILTIN_LOCAL.name, BUILTIN_LOCAL)
    rows = [profiles[name] for name in sorted(profiles)]
    if json_out:
        output.print_json([p.masked() for p in rows])
        return
    output.table(
        ["NAME", "KIND", "AUTH ID", "WHERE", "IM"],
        [[p.name, p.kind, p.auth_id, _where(p), im_url_for(p) or "embedded local IM"] for p in rows],
    )


def _where(profile: CloudProfile) -> str:
    if profile.kind == "egi":
        return f"{profile.get('site')} / {profile.get('vo')}"
    if profile.kind == "openstack":
        return profile.get("os_cloud") or "OS_* environment"
    if profile.kind == "aws":
        return profile.get("region") or profile.get("aws_profile") or "AWS environment"
    return "Dummy VMs"


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Show one profile (stored secrets masked)."""
    from deployer.adapters.clouds.profiles import get_profile

    data = get_profile(app_context(ctx).paths, name).masked()
    if json_out:
        output.print_json(data)
        return
    output.table(["FIELD", "VALUE"], [[key, value] for key, value in data.items()])


@app.command("remove")
def remove(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
    """Remove a profile from clouds.yaml (nothing on the cloud is touched)."""
    from deployer.adapters.clouds.profiles import remove_profile

    remove_profile(app_context(ctx).paths, name)
    output.info(f"cloud profile '{name}' removed")


@app.command("check")
def check(
    ctx: typer.Context,
    name: str = typer.Argument(...),
    token: str = typer.Option(
        None, "--token", help="Access token (else the profile's token source).", show_default=False
    ),
    im_url: str = typer.Option(None, "--im-url", help="IM endpoint to check through."),
    insecure: bool = typer.Option(False, "--insecure", help="Skip TLS verification (warns)."),
    cpus: int = typer.Option(2, help="Pick the cheapest flavor with at least this many vCPUs."),
    memory: str = typer.Option("4 GiB", help="... and this much memory."),
    gpus: int = typer.Option(0, help="... and this many GPUs."),
    json_out: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Check reachability and credentials; list usable flavors and images. Exit 3 when anything failed."""
    from deployer.adapters.clouds.discovery import check_cloud
    from deployer.core.placement import choose_flavor
    from deployer.core.spec import parse_size_mib
    from deployer.errors import RemoteError, UserError

    appctx = app_context(ctx)
    try:
        memory_mib = parse_size_mib(memory)
    except ValueError as err:
        raise UserError(f"--memory: {err}") from None
    with output.status(f"checking cloud {name}"):
        report = check_cloud(appctx.paths, name, token=token, im_url=im_url, verify=not insecure)
    choice = None
    if report.flavors:
        choice = choose_flavor(report.flavors, cpus=cpus, memory_mib=memory_mib, gpus=gpus)
    if json_out:
        data = report.to_dict()
        data["flavor_choice"] = (
            None
            if choice is None
            else {
                "flavor": choice.flavor.name if choice.flavor else None,
                "reasons": list(choice.reasons),
            }
        )
        output.print_json(data)
    else:
        _print_report(report, choice, appctx.verbose)
    if not report.ok:
        raise RemoteError(f"cloud {name}: {len(report.errors or [])} check(s) failed")


def _print_report(report: CheckReport, choice: FlavorChoice | None, verbose: int) -> None:
    output.info(f"cloud {report.cloud} ({report.kind}), IM auth id {report.auth_id}")
    if report.token_source:
        left = "" if report.token_expires_in is None else f", expires in {report.token_expires_in} s"
        output.info(f"token from {report.token_source}{left}")
    if report.im_url:
        state = f"IM {report.im_version}" if report.im_version else "not reachable"
        output.info(f"IM {report.im_url}: {state}")
    if report.flavors is not None:
        output.table(
            ["FLAVOR", "VCPUS", "RAM MiB", "DISK GiB", "GPUS"],
            [[f.name, f.vcpus, f.ram_mib, f.disk_gib, f.gpus] for f in report.flavors],
            title="flavors",
        )
    if choice is not None:
        lines = choice.reasons if verbose else choice.reasons[-1:]
        for line in lines:
            output.info(line)
    if report.images is not None:
        output.table(
            ["IMAGE", "ID", "IM URL"], [[i.name, i.id, i.url] for i in report.images], title="images"
        )
    if report.im_images is not None:
        output.table(
            ["IMAGE", "URI"], [[i.get("name"), i.get("uri")] for i in report.im_images], title="images (IM)"
        )
    if report.quotas:
        output.table(
            ["RESOURCE", "USED", "LIMIT"],
            [[k, (v or {}).get("used"), (v or {}).get("limit")] for k, v in sorted(report.quotas.items())],
            title="quotas (IM)",
        )
    for problem in report.errors or []:
        output.error(problem)
