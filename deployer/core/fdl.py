"""OSCAR's Functions Definition Language (FDL): parsing, validation and the service JSON to send.

Pure: YAML data in, typed values out; reading the FDL and its scripts is the caller's job
(``deployer.lifecycle.oscar``). The semantics are those of OSCAR's own tools:

- services live under ``functions: oscar: - <cluster-id>: {service}``; the same cluster id may appear in
  many list items, and the key becomes the service's ``cluster_id``;
- ``script`` is a path relative to the FDL file and the service carries the script's *content*;
- the top-level ``storage_providers`` and ``clusters`` are copied into every service (a service's own
  entries of the same type and id win, so the edge-to-cloud pattern of a per-service provider survives);
- ``cpu`` (and the other quantities) are sent as strings, whatever YAML made of them;
- ``environment`` accepts both ``Variables``/``Secrets`` (OSCAR's examples) and ``variables``/``secrets``.

Errors name the FDL, the field path and the fix (``functions.oscar[1].edge.cpu: ...``), and never quote
a value from a field that may hold a secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import SpecError

SERVICE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,37}[a-z0-9])?$")  # OSCAR: 1-39 chars, a DNS label
_CPU_RE = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
STORAGE_TYPES = ("minio", "s3", "onedata", "webdav", "rucio")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
VISIBILITIES = ("private", "public", "restricted")
_QUANTITY_FIELDS = ("memory", "total_memory", "ephemeral_storage_request")
_CPU_FIELDS = ("cpu", "total_cpu")
_BOOL_FIELDS = ("enable_gpu", "enable_sgx", "image_prefetch", "alpine", "file_stage_in")
_STRING_LIST_FIELDS = ("image_pull_secrets", "allowed_users")
_STRING_MAP_FIELDS = ("annotations", "labels")
# Accepted as written and sent unchanged: shapes OSCAR validates itself.
_PASS_THROUGH_FIELDS = (
    "vo",
    "isolation_level",
    "federation",
    "interlink_node_name",
    "expose",
    "volume",
    "kserve",
    "synchronous",
)
_SERVER_FIELDS = ("token", "owner", "bucket_list", "volume_status", "deployment")
SERVICE_FIELDS = (
    "name",
    "image",
    "script",
    *_CPU_FIELDS,
    *_QUANTITY_FIELDS,
    *_BOOL_FIELDS,
    "log_level",
    "environment",
    *_STRING_MAP_FIELDS,
    *_STRING_LIST_FIELDS,
    "input",
    "output",
    "mount",
    "storage_providers",
    "clusters",
    "cluster_id",
    "visibility",
    *_PASS_THROUGH_FIELDS,
)
_IO_FIELDS = ("storage_provider", "path", "suffix", "prefix")
_CLUSTER_FIELDS = ("endpoint", "auth_user", "auth_password", "ssl_verify")
# Keys whose values are credentials: registered for redaction, never quoted in an error.
SECRET_KEYS = frozenset(
    {"secret_key", "access_key", "token", "password", "refresh_token", "auth_password", "login"}
)


@dataclass(frozen=True)
class FdlService:
    """One service of an FDL, validated. ``definition`` is the service JSON without its script."""

    cluster_id: str
    name: str
    script_path: str  # as written: relative to the FDL file's folder
    where: str  # field path of the service in the FDL, for messages
    definition: Mapping[str, Any]


@dataclass(frozen=True)
class Fdl:
    services: tuple[FdlService, ...]

    def cluster_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.cluster_id for s in self.services))

    def for_cluster(self, cluster_id: str | None) -> tuple[FdlService, ...]:
        """The services to apply to one OSCAR cluster: those under ``cluster_id``; with none given, all
        of them when the FDL names a single cluster id (an FDL spanning clusters needs a choice)."""
        ids = self.cluster_ids()
        if cluster_id is None:
            if len(ids) > 1:
                raise SpecError(
                    "functions.oscar",
                    f"services for several clusters ({', '.join(ids)}); choose one cluster id",
                )
            return self.services
        if cluster_id not in ids:
            raise SpecError(
                "functions.oscar", f"no services under cluster id {cluster_id!r} (it has {', '.join(ids)})"
            )
        return tuple(s for s in self.services if s.cluster_id == cluster_id)


def service_payload(service: FdlService, script: str) -> dict[str, Any]:
    """The JSON body of ``POST``/``PUT /system/services``: the definition plus the script's content."""
    return {**service.definition, "script": script}


def secret_values(fdl: Fdl) -> list[str]:
    """Every credential an FDL carries (storage keys, cluster passwords, environment secrets)."""
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, Mapping):
            for child_key, child in node.items():
                if key == "secrets" and isinstance(child, str):
                    found.append(child)
                else:
                    walk(child, str(child_key))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif key in SECRET_KEYS and isinstance(node, str):
            found.append(node)

    for service in fdl.services:
        walk(dict(service.definition))
    return list(dict.fromkeys(found))


# ---- parsing -------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def parse_fdl(data: Any, source: str) -> Fdl:
    """Validate an FDL document (already parsed YAML). ``source`` names the file in errors."""
    try:
        return _parse(data)
    except _Bad as bad:
        raise SpecError(f"{source}: {bad.path}" if bad.path else source, bad.message) from None


def _parse(data: Any) -> Fdl:
    if not isinstance(data, Mapping):
        raise _Bad("", "an FDL must be a YAML mapping with 'functions: oscar: - <cluster-id>: {service}'")
    _no_unknown(data, ("functions", "storage_providers", "clusters"), "")
    functions = data.get("functions")
    if not isinstance(functions, Mapping) or "oscar" not in functions:
        raise _Bad("functions", "missing; write 'functions: oscar: - <cluster-id>: {name, image, script}'")
    others = [str(k) for k in functions if k != "oscar"]
    if others:
        raise _Bad(f"functions.{others[0]}", "only OSCAR services (functions.oscar) can be deployed here")
    items = functions["oscar"]
    if not isinstance(items, list) or not items:
        raise _Bad("functions.oscar", "must be a non-empty list of '- <cluster-id>: {service}' items")
    providers = _storage_providers(data.get("storage_providers"), "storage_providers")
    clusters = _clusters(data.get("clusters"), "clusters")
    services: list[FdlService] = []
    seen: dict[tuple[str, str], str] = {}
    for index, item in enumerate(items):
        where = f"functions.oscar[{index}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise _Bad(where, "each item is a one-key mapping '<cluster-id>: {service}'")
        ((cluster_id, body),) = item.items()
        cluster_id = str(cluster_id)
        where = f"{where}.{cluster_id}"
        service = _service(body, where, cluster_id, providers, clusters)
        key = (cluster_id, service.name)
        if key in seen:
            raise _Bad(f"{where}.name", f"'{service.name}' is already defined at {seen[key]}; rename one")
        seen[key] = where
        services.append(service)
    return Fdl(tuple(services))


def _no_unknown(node: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in node:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
            raise _Bad(_join(where, str(key)), f"unknown field; {hint}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mapping(value: Any, where: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, f"must be a mapping of {what}")
    return value


def _string(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad(where, f"must be a non-empty string ({what})")
    return value


def _storage_providers(value: Any, where: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    providers: dict[str, dict[str, Any]] = {}
    for kind, entries in _mapping(value, where, "storage types (minio, s3, ...)").items():
        kind_where = f"{where}.{kind}"
        if kind not in STORAGE_TYPES:
            raise _Bad(kind_where, f"unknown storage type; use one of {', '.join(STORAGE_TYPES)}")
        providers[kind] = {}
        for ident, settings in _mapping(entries, kind_where, "provider ids to their settings").items():
            providers[kind][str(ident)] = dict(_mapping(settings, f"{kind_where}.{ident}", "settings"))
    return providers


def _clusters(value: Any, where: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    clusters: dict[str, dict[str, Any]] = {}
    for ident, settings in _mapping(value, where, "cluster ids to {endpoint, auth_user, ...}").items():
        cluster_where = f"{where}.{ident}"
        settings = _mapping(settings, cluster_where, "endpoint, auth_user, auth_password, ssl_verify")
        _no_unknown(settings, _CLUSTER_FIELDS, cluster_where)
        _string(settings.get("endpoint"), f"{cluster_where}.endpoint", "the cluster's OSCAR URL")
        if "ssl_verify" in settings and not isinstance(settings["ssl_verify"], bool):
            raise _Bad(f"{cluster_where}.ssl_verify", "must be true or false")
        clusters[str(ident)] = dict(settings)
    return clusters


def _service(
    body: Any,
    where: str,
    cluster_id: str,
    top_providers: dict[str, dict[str, Any]],
    top_clusters: dict[str, dict[str, Any]],
) -> FdlService:
    body = _mapping(body, where, "service fields (name, image, script, ...)")
    for key in body:
        if key in _SERVER_FIELDS:
            raise _Bad(f"{where}.{key}", "is set by the OSCAR server; remove it")
    _no_unknown(body, SERVICE_FIELDS, where)
    name = body.get("name")
    if not isinstance(name, str) or not SERVICE_NAME_RE.match(name):
        raise _Bad(
            f"{where}.name",
            "required: 1-39 lowercase letters, digits and '-', starting and ending with a letter or digit",
        )
    _string(body.get("image"), f"{where}.image", "a container image such as ghcr.io/grycap/cowsay")
    script = _string(body.get("script"), f"{where}.script", "a script path relative to the FDL file")
    if "cluster_id" in body and str(body["cluster_id"]) != cluster_id:
        raise _Bad(f"{where}.cluster_id", f"differs from the item's key {cluster_id!r}; remove it")
    definition: dict[str, Any] = {}
    for key, value in body.items():
        field = f"{where}.{key}"
        if key == "script":
            continue
        if key in _CPU_FIELDS:
            definition[key] = _cpu(value, field)
        elif key in _QUANTITY_FIELDS:
            definition[key] = _quantity(value, field)
        elif key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise _Bad(field, "must be true or false")
            definition[key] = value
        elif key == "log_level":
            definition[key] = _choice(value, LOG_LEVELS, field, upper=True)
        elif key == "visibility":
            definition[key] = _choice(value, VISIBILITIES, field)
        elif key == "environment":
            definition[key] = _environment(value, field)
        elif key in _STRING_MAP_FIELDS:
            definition[key] = _string_map(value, field)
        elif key in _STRING_LIST_FIELDS:
            definition[key] = _string_list(value, field)
        elif key not in ("input", "output", "mount", "storage_providers", "clusters"):
            definition[key] = value
    providers = _merged(
        top_providers, _storage_providers(body.get("storage_providers"), f"{where}.storage_providers")
    )
    clusters = {**top_clusters, **_clusters(body.get("clusters"), f"{where}.clusters")}
    for key in ("input", "output"):
        if key in body:
            definition[key] = [
                _io(entry, f"{where}.{key}[{i}]", providers, clusters)
                for i, entry in enumerate(_list(body[key], f"{where}.{key}"))
            ]
    if "mount" in body:
        definition["mount"] = _io(body["mount"], f"{where}.mount", providers, clusters)
    definition["cluster_id"] = cluster_id
    if providers:
        definition["storage_providers"] = providers
    if clusters:
        definition["clusters"] = clusters
    return FdlService(cluster_id, name, script, where, definition)


def _merged(top: dict[str, dict[str, Any]], own: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged = {kind: dict(entries) for kind, entries in top.items()}
    for kind, entries in own.items():
        merged.setdefault(kind, {}).update(entries)
    return merged


def _cpu(value: Any, where: str) -> str:
    text = _scalar(value, where)
    if not _CPU_RE.match(text) or float(text.rstrip("m")) <= 0:
        raise _Bad(where, f"'{text}' is not a CPU amount; write e.g. 0.5, 1 or 500m")
    return text


def _quantity(value: Any, where: str) -> str:
    text = _scalar(value, where)
    if not _QUANTITY_RE.match(text):
        raise _Bad(where, f"'{text}' is not a Kubernetes quantity; write e.g. 512Mi or 2Gi")
    return text


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Bad(where, "must be a single value (a string or a number)")
    return str(value)


def _choice(value: Any, allowed: tuple[str, ...], where: str, *, upper: bool = False) -> str:
    text = str(value).upper() if upper else str(value)
    if text not in allowed:
        raise _Bad(where, f"must be one of {', '.join(allowed)}")
    return text


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(where, "must be a list")
    return value


def _string_list(value: Any, where: str) -> list[str]:
    return [_scalar(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))]


def _string_map(value: Any, where: str) -> dict[str, str]:
    return {str(k): _scalar(v, f"{where}.{k}") for k, v in _mapping(value, where, "names to values").items()}


def _environment(value: Any, where: str) -> dict[str, dict[str, str]]:
    """``{variables: {...}, secrets: {...}}`` from either spelling OSCAR's examples use."""
    result: dict[str, dict[str, str]] = {}
    for key, entries in _mapping(value, where, "Variables and Secrets").items():
        normal = str(key).lower()
        if normal not in ("variables", "secrets"):
            raise _Bad(f"{where}.{key}", "unknown field; use Variables (or variables) and Secrets")
        if normal in result:
            raise _Bad(f"{where}.{key}", f"given twice (as {normal} in another spelling); keep one")
        # A secret's value is never quoted, so a bad one is reported by name only.
        result[normal] = _string_map(entries, f"{where}.{key}")
    return result


def _io(
    entry: Any, where: str, providers: dict[str, dict[str, Any]], clusters: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    entry = _mapping(entry, where, "storage_provider, path, suffix, prefix")
    _no_unknown(entry, _IO_FIELDS, where)
    ref = _string(entry.get("storage_provider"), f"{where}.storage_provider", "'minio' or '<type>.<id>'")
    kind, _, ident = ref.partition(".")
    if kind not in STORAGE_TYPES:
        raise _Bad(
            f"{where}.storage_provider",
            f"unknown storage type {kind!r}; use one of {', '.join(STORAGE_TYPES)}",
        )
    builtin = kind == "minio" and ident in ("", "default")
    if not builtin and ident not in providers.get(kind, {}) and ident not in clusters:
        raise _Bad(
            f"{where}.storage_provider",
            f"'{ref}' is not defined; add storage_providers.{kind}.{ident or '<id>'} (or use 'minio', "
            "the cluster's own MinIO)",
        )
    path = _string(entry.get("path"), f"{where}.path", "'bucket' or 'bucket/folder'")
    result: dict[str, Any] = {"storage_provider": ref, "path": path.strip("/")}
    for key in ("suffix", "prefix"):
        if key in entry:
            result[key] = _string_list(entry[key], f"{where}.{key}")
    return result
