"""Cloud profiles (``DEPLOYER_HOME/clouds.yaml``) and the IM auth entries built from them.

Called by ``deployer clouds ...`` (add/list/show/remove/check), by ``deployer.lifecycle.credentials``
(``auth_entries_for_cloud`` / ``auth_entries_for_clouds`` when ``--cloud`` names a profile) and by the
daemon (``build_cloud_auth`` keeps token providers alive and rebuilds the entries with fresh tokens).

A profile stores secrets by reference where it can: an env var name (``im_password_env``,
``token_env``), an oidc-agent account, a token file path, an ``os_cloud`` entry of OpenStack's own
``clouds.yaml``, an AWS profile name. A secret stored literally (``im_password``, ``token``,
``client_secret``) is allowed; the file is always 0600 and ``masked()`` hides those values.

Kinds and the IM entry each one becomes:
- ``egi``: ``type = EGI; host = SITE; vo = VO; token = ...``; with ``keystone_url`` (and ``project_id``)
  an ``OpenStack`` entry with ``auth_version = 3.x_oidc_access_token`` (username ``egi.eu``, tenant
  ``openid``, domain = project). The IM endpoint defaults to https://im.egi.eu/im and takes the token.
- ``openstack``: credentials resolved by openstacksdk's own loader (``clouds.yaml``, ``secure.yaml``,
  ``OS_*``); password, application-credential and OIDC-token auth map to an ``OpenStack`` entry.
- ``aws``: keys from ``AWS_*`` or the shared credentials file; an ``EC2`` entry.
- ``local``: a ``Dummy`` entry for the embedded IM (a built-in profile named ``local`` always exists).
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from deployer.adapters.clouds.tokens import RefreshSettings, TokenProvider, TokenSpec
from deployer.adapters.im.auth import AuthEntry
from deployer.core.render import cloud_auth_id
from deployer.errors import NotFoundError, UserError
from deployer.logs import MASK, register_secret
from deployer.paths import Paths, ensure_private_dir

log = logging.getLogger("deployer.clouds.profiles")

KINDS = ("egi", "openstack", "aws", "local")
EGI_IM_URL = "https://im.egi.eu/im"
# Profile names become IM auth ids (``-`` -> ``_``): a letter first and no ``_`` keeps ids distinct.
PROFILE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}$")
SECRET_KEYS = frozenset({"im_password", "token", "client_secret"})

_COMMON_KEYS = frozenset({"im_url", "im_username", "im_password", "im_password_env", "image", "description"})
_TOKEN_KEYS = frozenset(
    {
        "token",
        "token_env",
        "token_file",
        "oidc_agent_account",
        "issuer",
        "client_id",
        "client_secret",
        "refresh_token_env",
    }
)
KIND_KEYS: dict[str, frozenset[str]] = {
    "egi": _COMMON_KEYS | _TOKEN_KEYS | {"site", "vo", "project_id", "keystone_url"},
    "openstack": _COMMON_KEYS | _TOKEN_KEYS | {"os_cloud", "region"},
    "aws": _COMMON_KEYS | {"region", "aws_profile"},
    "local": _COMMON_KEYS,
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {"egi": ("site", "vo"), "openstack": (), "aws": (), "local": ()}


@dataclass(frozen=True)
class CloudProfile:
    name: str
    kind: str
    settings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_profile(self)

    def get(self, key: str) -> str | None:
        value = self.settings.get(key)
        return str(value) if value not in (None, "") else None

    @property
    def auth_id(self) -> str:
        return cloud_auth_id(self.name)

    def masked(self) -> dict[str, Any]:
        """The profile for display: stored secrets replaced by ``***``."""
        settings = {k: (MASK if k in SECRET_KEYS else v) for k, v in sorted(self.settings.items())}
        return {"name": self.name, "kind": self.kind, "auth_id": self.auth_id, **settings}


def validate_profile(profile: CloudProfile) -> None:
    where = f"cloud profile '{profile.name}'"
    if not PROFILE_NAME.match(profile.name):
        raise UserError(f"{where}: names are lowercase letters, digits and '-', starting with a letter")
    if profile.kind not in KINDS:
        raise UserError(f"{where}: unknown kind '{profile.kind}'; use one of {', '.join(KINDS)}")
    allowed = KIND_KEYS[profile.kind]
    unknown = sorted(set(profile.settings) - allowed)
    if unknown:
        raise UserError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = [key for key in REQUIRED_KEYS[profile.kind] if not profile.settings.get(key)]
    if missing:
        raise UserError(f"{where}: kind {profile.kind} needs {', '.join(missing)}")
    for key, value in profile.settings.items():
        if not isinstance(value, str):
            raise UserError(f"{where}: field {key} must be a string")


BUILTIN_LOCAL = CloudProfile("local", "local", {})


# --- the profile file --------------------------------------------------------------------------------


def load_profiles(paths: Paths) -> dict[str, CloudProfile]:
    """Every profile in ``clouds.yaml`` (empty when the file does not exist). Secrets are registered."""
    path = paths.clouds_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise UserError(f"{path}: invalid YAML; fix or remove the file") from None
    clouds = data.get("clouds", {}) if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise UserError(f"{path}: expected a mapping 'clouds: {{NAME: {{kind: ...}}}}'")
    profiles = {}
    for name, entry in clouds.items():
        if not isinstance(entry, dict) or "kind" not in entry:
            raise UserError(f"{path}: cloud '{name}' needs 'kind' ({', '.join(KINDS)})")
        # Hand-edited files may hold numbers (a numeric project id); every setting is a string.
        settings = {
            str(k): v if isinstance(v, (dict, list)) else str(v) for k, v in entry.items() if k != "kind"
        }
        for key in SECRET_KEYS & settings.keys():
            register_secret(str(settings[key]))
        profiles[str(name)] = CloudProfile(str(name), str(entry["kind"]), settings)
    return profiles


def get_profile(paths: Paths, name: str) -> CloudProfile:
    profiles = load_profiles(paths)
    if name in profiles:
        return profiles[name]
    if name == BUILTIN_LOCAL.name:
        return BUILTIN_LOCAL
    known = ", ".join(sorted(profiles)) or "none yet"
    raise NotFoundError(f"no cloud profile '{name}' (known: {known}); add one with 'deployer clouds add'")


def _write_profiles(paths: Paths, profiles: Mapping[str, CloudProfile]) -> None:
    ensure_private_dir(paths.config_dir)
    data = {"clouds": {p.name: {"kind": p.kind, **dict(p.settings)} for p in profiles.values()}}
    text = yaml.safe_dump(data, sort_keys=True, default_flow_style=False)
    target = paths.clouds_file
    tmp = target.with_name(target.name + ".tmp")
    # Created 0600 (never briefly world-readable), then renamed over the old file atomically.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def add_profile(paths: Paths, profile: CloudProfile, *, replace: bool = False) -> None:
    profiles = load_profiles(paths)
    if profile.name in profiles and not replace:
        raise UserError(f"cloud profile '{profile.name}' exists; pass --replace to overwrite it")
    profiles[profile.name] = profile
    _write_profiles(paths, profiles)


def remove_profile(paths: Paths, name: str) -> None:
    profiles = load_profiles(paths)
    if name not in profiles:
        raise NotFoundError(f"no cloud profile '{name}' in {paths.clouds_file}")
    del profiles[name]
    _write_profiles(paths, profiles)


# --- credentials per kind -----------------------------------------------------------------------------


def token_spec(profile: CloudProfile, env: Mapping[str, str], token: str | None = None) -> TokenSpec:
    """Where this profile's access token comes from; ``token`` (``--token``) wins."""
    refresh = None
    refresh_var = profile.get("refresh_token_env")
    if refresh_var and env.get(refresh_var) and profile.get("client_id"):
        refresh = RefreshSettings(
            client_id=profile.get("client_id") or "",
            refresh_token=env[refresh_var],
            issuer=profile.get("issuer"),
            client_secret=profile.get("client_secret"),
        )
    token_env = profile.get("token_env")
    literal = token or profile.get("token") or (env.get(token_env) if token_env else None)
    if token_env and not literal:
        # Named explicitly: falling back to another variable could silently pick someone else's token.
        raise UserError(f"cloud profile '{profile.name}' reads its token from {token_env}, which is not set")
    return TokenSpec.from_options(
        token=literal,
        env=env,
        oidc_agent_account=profile.get("oidc_agent_account"),
        token_file=profile.get("token_file"),
        refresh=refresh,
    )


def has_token_source(profile: CloudProfile) -> bool:
    """Whether the profile uses an access token: egi always does, other kinds when one is configured."""
    return profile.kind == "egi" or any(
        profile.get(k)
        for k in ("token", "token_env", "token_file", "oidc_agent_account", "refresh_token_env")
    )


def _entry(profile: CloudProfile, kind: str, ident: str | None, fields: dict[str, str]) -> AuthEntry:
    """An auth entry whose line the IM can read back; otherwise a UserError naming the profile."""
    try:
        entry = AuthEntry(kind, ident, fields)
        entry.line()  # encoding checks: values the IM's parser cannot represent fail here
    except ValueError as err:
        raise UserError(f"cloud profile '{profile.name}': {err}") from None
    return entry


def egi_entry(profile: CloudProfile, token: str) -> AuthEntry:
    keystone = profile.get("keystone_url")
    if keystone:
        fields = {
            "host": keystone,
            "username": "egi.eu",  # the identity provider registered in the sites' Keystone
            "tenant": "openid",  # the federation protocol
            "auth_version": "3.x_oidc_access_token",
            "password": token,
            "vo": profile.get("vo") or "",
        }
        if profile.get("project_id"):
            fields["domain"] = profile.get("project_id") or ""
        return _entry(profile, "OpenStack", profile.auth_id, fields)
    # The IM resolves the site's Keystone URL and the VO's project through the EGI information system.
    return _entry(
        profile,
        "EGI",
        profile.auth_id,
        {"host": profile.get("site") or "", "vo": profile.get("vo") or "", "token": token},
    )


def openstack_config(profile: CloudProfile, env: Mapping[str, str]) -> dict[str, Any]:
    """The resolved OpenStack cloud config, read exactly the way openstacksdk and the openstack CLI do.

    Returns openstacksdk's ``CloudRegion.config`` (``auth_type``, ``auth``, ``region_name`` ...).
    """
    from openstack import config as os_config
    from openstack import exceptions as os_exceptions

    saved = dict(os.environ)
    try:
        # The loader reads OS_* from os.environ only; give it the caller's environment for this call.
        os.environ.clear()
        os.environ.update(env)
        config_files, secure_files = _openstack_config_files(env)
        loader = os_config.OpenStackConfig(
            config_files=config_files, secure_files=secure_files, load_envvars=True
        )
        region = profile.get("region")
        cloud = loader.get_one(cloud=profile.get("os_cloud"), region_name=region)
    except os_exceptions.ConfigException as err:
        raise UserError(f"cloud profile '{profile.name}': {err}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return dict(cloud.config)


def _openstack_config_files(env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """openstacksdk's search path (cwd, user config dir, site dirs), computed from ``env``'s HOME/XDG.

    openstacksdk fixes its own list when it is imported, from the process's HOME; the caller's
    environment decides here so that profiles resolve the same way in every process (and in tests).
    """
    home = Path(env.get("HOME") or "~").expanduser()
    user_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "openstack"
    dirs = [Path.cwd(), user_dir, Path("/etc/xdg/openstack"), Path("/etc/openstack")]
    config = [str(d / f"clouds.{ext}") for d in dirs for ext in ("yaml", "yml", "json")]
    secure = [str(d / f"secure.{ext}") for d in dirs for ext in ("yaml", "yml", "json")]
    return config, secure


def openstack_entry(profile: CloudProfile, config: Mapping[str, Any], token: Callable[[], str]) -> AuthEntry:
    auth = dict(config.get("auth") or {})
    auth_type = str(config.get("auth_type") or "password")
    auth_url = auth.get("auth_url")
    where = f"cloud profile '{profile.name}'"
    if not auth_url:
        raise UserError(f"{where}: no auth_url; set os_cloud to a clouds.yaml entry or export OS_AUTH_URL")
    project = auth.get("project_name") or auth.get("project_id") or auth.get("tenant_name")
    fields: dict[str, str] = {"host": str(auth_url)}
    if auth_type in ("password", "v3password"):
        if not (auth.get("username") and auth.get("password") and project):
            raise UserError(f"{where}: password auth needs username, password and a project")
        fields.update(username=auth["username"], password=auth["password"], tenant=project)
        fields["auth_version"] = "3.x_password"
        domain = auth.get("user_domain_name") or auth.get("domain_name") or auth.get("project_domain_name")
        if domain:
            fields["domain"] = domain
    elif auth_type == "v3applicationcredential":
        if not (auth.get("application_credential_id") and auth.get("application_credential_secret")):
            raise UserError(f"{where}: application credentials need application_credential_id and _secret")
        credential_id = auth["application_credential_id"]
        # The IM insists on a tenant for OpenStack entries; Keystone ignores it for application
        # credentials (they are bound to their project), so any non-empty value works.
        fields.update(
            username=credential_id,
            password=auth["application_credential_secret"],
            tenant=project or credential_id,
            auth_version="3.x_appcred",
        )
    elif auth_type == "v3oidcaccesstoken":
        fields.update(
            username=auth.get("identity_provider") or "egi.eu",
            tenant=auth.get("protocol") or "openid",
            password=auth.get("access_token") or token(),
            auth_version="3.x_oidc_access_token",
        )
        if auth.get("project_id"):
            fields["domain"] = auth["project_id"]
    else:
        raise UserError(
            f"{where}: auth_type {auth_type} is not supported by the IM; use password, "
            "v3applicationcredential or v3oidcaccesstoken"
        )
    if config.get("region_name"):
        fields["service_region"] = str(config["region_name"])
    return _entry(profile, "OpenStack", profile.auth_id, fields)


def aws_credentials(profile: CloudProfile, env: Mapping[str, str]) -> dict[str, str]:
    """Access key, secret, optional session token and region: env first, then the shared files, like boto3."""
    aws_profile = profile.get("aws_profile") or env.get("AWS_PROFILE") or "default"
    home = Path(env.get("HOME", "~")).expanduser()
    creds: dict[str, str] = {}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY") and not profile.get("aws_profile"):
        creds = {"key": env["AWS_ACCESS_KEY_ID"], "secret": env["AWS_SECRET_ACCESS_KEY"]}
        if env.get("AWS_SESSION_TOKEN"):
            creds["token"] = env["AWS_SESSION_TOKEN"]
    else:
        shared = _ini_section(
            Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"), aws_profile
        )
        if shared.get("aws_access_key_id") and shared.get("aws_secret_access_key"):
            creds = {"key": shared["aws_access_key_id"], "secret": shared["aws_secret_access_key"]}
            if shared.get("aws_session_token"):
                creds["token"] = shared["aws_session_token"]
    if not creds:
        raise UserError(
            f"cloud profile '{profile.name}': no AWS keys; export AWS_ACCESS_KEY_ID and "
            f"AWS_SECRET_ACCESS_KEY or add profile [{aws_profile}] to ~/.aws/credentials"
        )
    config_section = "default" if aws_profile == "default" else f"profile {aws_profile}"
    config = _ini_section(Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config"), config_section)
    region = (
        profile.get("region")
        or env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or config.get("region")
    )
    if region:
        creds["region"] = region
    return creds


def _ini_section(path: Path, section: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as err:
        raise UserError(f"{path}: cannot parse ({type(err).__name__})") from None
    return dict(parser[section]) if parser.has_section(section) else {}


def aws_entry(profile: CloudProfile, creds: Mapping[str, str]) -> AuthEntry:
    fields = {"username": creds["key"], "password": creds["secret"]}
    if creds.get("token"):
        fields["token"] = creds["token"]
    return _entry(profile, "EC2", profile.auth_id, fields)


def image_url(
    profile: CloudProfile, image: str, *, region: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """An image name or id in the URL form the IM expects for this cloud; full URLs pass unchanged."""
    if "://" in image:
        return image
    if profile.kind == "egi":
        return f"egi://{profile.get('site')}/{image}?{profile.get('vo')}"
    if profile.kind == "aws":
        region = (
            region
            or profile.get("region")
            or (env or {}).get("AWS_REGION")
            or (env or {}).get("AWS_DEFAULT_REGION")
        )
        if not region:
            raise UserError(f"cloud profile '{profile.name}': an AWS image needs a region (set region)")
        return f"aws://{region}/{image}"
    if profile.kind == "openstack":
        host = urlparse(
            str(openstack_config(profile, dict(env or os.environ)).get("auth", {}).get("auth_url", ""))
        ).hostname
        if not host:
            raise UserError(f"cloud profile '{profile.name}': no Keystone URL to build an ost:// image URL")
        return f"ost://{host}/{image}"
    return f"dummy://deployer/{image}"


def default_images(
    paths: Paths, cloud_names: Iterable[str], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Cloud name -> the profile's default image as an IM URL (for ``RenderOptions.default_images``)."""
    images = {}
    for name in cloud_names:
        profile = get_profile(paths, name)
        if profile.get("image"):
            images[name] = image_url(profile, profile.get("image") or "", env=env)
    return images


# --- the IM endpoint and the full auth ------------------------------------------------------------------


def im_url_for(profile: CloudProfile) -> str | None:
    """The profile's IM endpoint; egi defaults to the EGI IM; ``None`` means the embedded local IM."""
    return profile.get("im_url") or (EGI_IM_URL if profile.kind == "egi" else None)


def im_password_entry(profile: CloudProfile, env: Mapping[str, str]) -> AuthEntry | None:
    user = profile.get("im_username")
    if not user:
        return None
    var = profile.get("im_password_env")
    password = profile.get("im_password") or (env.get(var) if var else None)
    if not password:
        hint = f"export {var}" if var else "set im_password_env"
        raise UserError(f"cloud profile '{profile.name}': im_username needs a password; {hint}")
    return _entry(profile, "InfrastructureManager", None, {"username": user, "password": password})


@dataclass
class CloudAuth:
    """The IM endpoint and a recipe for the auth entries of a set of clouds.

    ``entries()`` asks the token providers for current tokens each time, so a long-running caller (the
    daemon) gets refreshed tokens by calling it again before each IM request.
    """

    im_url: str | None
    clouds: tuple[str, ...]
    _builders: list[Callable[[], AuthEntry]]
    providers: dict[str, TokenProvider] = field(default_factory=dict)

    def entries(self) -> list[AuthEntry]:
        built = [build() for build in self._builders]
        for entry in built:
            for secret in entry.secret_values():
                register_secret(secret)
        return built


def build_cloud_auth(
    paths: Paths,
    cloud_names: Iterable[str],
    *,
    token: str | None = None,
    im_url: str | None = None,
    im_entry: AuthEntry | None = None,
    env: Mapping[str, str] | None = None,
) -> CloudAuth:
    """Auth for every named cloud (front end first): one entry each with distinct ids, plus the IM line.

    ``token`` (``--token``) overrides the profiles' token sources; ``im_url`` (``--im-url``) overrides the
    profiles' endpoints; ``im_entry`` supplies the IM line (the caller's local IM credentials, an auth file).
    """
    env = dict(os.environ) if env is None else dict(env)
    names = tuple(dict.fromkeys(cloud_names))
    if not names:
        raise UserError("no cloud named")
    profiles = [get_profile(paths, name) for name in names]
    providers: dict[str, TokenProvider] = {}

    def provider(profile: CloudProfile) -> TokenProvider:
        if profile.name not in providers:
            providers[profile.name] = TokenProvider(token_spec(profile, env, token))
        return providers[profile.name]

    builders: list[Callable[[], AuthEntry]] = []
    for profile in profiles:
        builders.append(_entry_builder(profile, env, provider))

    urls = {p.name: im_url_for(p) for p in profiles}
    chosen_url = im_url or urls[names[0]]
    for name, url in urls.items():
        if not im_url and url and chosen_url and url != chosen_url:
            log.warning(
                "cloud %s names IM %s; using the front end's IM %s for the whole cluster",
                name,
                url,
                chosen_url,
            )
    builders.append(_im_line_builder(profiles, env, provider, im_entry, token is not None))
    return CloudAuth(im_url=chosen_url, clouds=names, _builders=builders, providers=providers)


def _entry_builder(
    profile: CloudProfile, env: Mapping[str, str], provider: Callable[[CloudProfile], TokenProvider]
) -> Callable[[], AuthEntry]:
    if profile.kind == "egi":
        tokens = provider(profile)
        return lambda: egi_entry(profile, tokens.current())
    if profile.kind == "openstack":
        config = openstack_config(profile, env)
        auth = config.get("auth") or {}
        for key in ("password", "application_credential_secret", "access_token"):
            register_secret(auth.get(key))
        needs_token = config.get("auth_type") == "v3oidcaccesstoken" and not auth.get("access_token")
        tokens = provider(profile) if needs_token else None
        entry_token = tokens.current if tokens else _no_token(profile)
        openstack_entry(profile, config, entry_token)  # validate now, not at the first IM call
        return lambda: openstack_entry(profile, config, entry_token)
    if profile.kind == "aws":
        creds = aws_credentials(profile, env)
        register_secret(creds["secret"])
        register_secret(creds.get("token"))
        entry = aws_entry(profile, creds)
        return lambda: entry
    dummy = AuthEntry("Dummy", profile.auth_id, {})
    return lambda: dummy


def _no_token(profile: CloudProfile) -> Callable[[], str]:
    def fail() -> str:
        raise UserError(f"cloud profile '{profile.name}' needs an access token")

    return fail


def _im_line_builder(
    profiles: list[CloudProfile],
    env: Mapping[str, str],
    provider: Callable[[CloudProfile], TokenProvider],
    im_entry: AuthEntry | None,
    token_given: bool,
) -> Callable[[], AuthEntry]:
    if im_entry is not None:
        return lambda: im_entry
    for profile in profiles:
        entry = im_password_entry(profile, env)
        if entry is not None:
            register_secret(entry.fields["password"])
            return lambda: entry
    for profile in profiles:
        if token_given or has_token_source(profile):
            tokens = provider(profile)
            return lambda: _entry(profile, "InfrastructureManager", None, {"token": tokens.current()})
    if all(p.kind == "local" for p in profiles):
        raise UserError("local clouds need the embedded IM's credentials; the caller passes im_entry")
    raise UserError(
        f"cloud profile '{profiles[0].name}' names no IM credentials; set im_username and "
        "im_password_env, or a token source (token_env, oidc_agent_account, token_file)"
    )


def auth_entries_for_clouds(
    paths: Paths,
    cloud_names: Iterable[str],
    *,
    token: str | None = None,
    im_url: str | None = None,
    im_entry: AuthEntry | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str | None, list[AuthEntry]]:
    """(IM URL, entries) for a multi-cloud cluster; see ``build_cloud_auth``. ``None`` URL: the local IM."""
    auth = build_cloud_auth(paths, cloud_names, token=token, im_url=im_url, im_entry=im_entry, env=env)
    return auth.im_url, auth.entries()


def auth_entries_for_cloud(
    paths: Paths,
    cloud_name: str,
    *,
    token: str | None = None,
    im_url: str | None = None,
    im_entry: AuthEntry | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str | None, list[AuthEntry]]:
    """(IM URL, [cloud entry, InfrastructureManager line]) for one profile."""
    return auth_entries_for_clouds(
        paths, [cloud_name], token=token, im_url=im_url, im_entry=im_entry, env=env
    )
