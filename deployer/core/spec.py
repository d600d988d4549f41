"""The cluster spec: the short YAML a user writes to describe a Kubernetes + OSCAR + elastic cluster.

Pure: parsing text, applying ``--set`` overrides and validating. Reading files happens in ``load_spec``
only because the CLI and the simulator both need "path or nothing"; everything else takes values.
Every field has a documented default, so an empty spec (or none) is a valid single-cloud cluster.
Errors name the field path and the fix (``worker_groups[1].max: must be >= min (2)``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from deployer.errors import SpecError, UserError

NAME_PATTERN = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|[KMGT])?\s*$", re.IGNORECASE)
_UNIT_MIB = {"": 1024.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def parse_size_mib(value: Any) -> int:
    """``"8 GiB"``, ``"512MiB"``, ``"8G"`` or a bare number of GiB, as whole MiB."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '8 GiB' or '512 MiB'")
    if isinstance(value, int | float):
        return round(float(value) * 1024)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a size; write e.g. '8 GiB' or '512 MiB'")
    number, unit = float(match.group(1)), (match.group(2) or "")[:1].upper()
    return round(number * _UNIT_MIB[unit])


# Held as whole MiB; dumped to JSON as "N MiB" so a dumped spec reads back identically (a bare number is GiB).
SizeMiB = Annotated[
    int, BeforeValidator(parse_size_mib), PlainSerializer(lambda v: f"{v} MiB", when_used="json"), Field(ge=0)
]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Arch = Literal["amd64", "arm64"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, coerce_numbers_to_str=True)


class Taint(_Strict):
    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class FrontEnd(_Strict):
    """The front-end VM: Kubernetes control plane, OSCAR, MinIO and the elasticity daemon."""

    cpus: int = Field(2, ge=1)
    memory: SizeMiB = "4 GiB"  # type: ignore[assignment]
    disk: SizeMiB = "20 GiB"  # type: ignore[assignment]
    image: str | None = Field(None, description="VM image URL; default: the cloud profile's image")
    instance_type: str | None = Field(None, description="flavor name; default: picked from cpus/memory")
    public_ip: bool = Field(True, description="ask the cloud for a public IP (never for --cloud local)")


class Kubernetes(_Strict):
    version: str = Field("1.30", pattern=r"^\d+\.\d+(\.\d+)?$")
    cri: Literal["containerd", "docker"] = "containerd"
    ingress: bool = True
    cert_manager: bool = False
    public_dns_name: str | None = None
    admin_token: str | None = Field(None, description="secret; generated once when absent")

    @model_validator(mode="after")
    def _cert_manager_needs_dns(self) -> Kubernetes:
        if self.cert_manager and not self.public_dns_name:
            raise ValueError("cert_manager needs public_dns_name (Let's Encrypt issues for a DNS name)")
        return self


class Oscar(_Strict):
    enabled: bool = True
    minio_storage: SizeMiB = "20 GiB"  # type: ignore[assignment]
    # Secrets: generated once per cluster and persisted 0600 when absent; never printed unless asked.
    admin_password: str | None = Field(None, description="secret; generated once when absent")
    oscar_password: str | None = Field(None, description="secret; generated once when absent")
    minio_password: str | None = Field(None, min_length=8, description="secret, 8+ chars; generated")
    fdl_files: tuple[str, ...] = Field(
        (),
        description="OSCAR FDL files (paths relative to the spec file) whose services `create` applies "
        "once the cluster is configured; see `deployer oscar apply`",
    )

    @model_validator(mode="after")
    def _fdl_needs_oscar(self) -> Oscar:
        if self.fdl_files and not self.enabled:
            raise _FieldError("fdl_files", "needs oscar.enabled: true (the services run on OSCAR)")
        return self


class Elasticity(_Strict):
    enabled: bool = True
    idle_time: float = Field(300, gt=0, description="seconds a node stays idle before power-off")
    idle_policy: Literal["fixed", "break-even", "demand"] = Field(
        "demand",
        description="fixed: an empty node goes after idle_time; break-even: after min(idle_time, "
        "max(60 s, its group's boot_seconds + 30 s shutdown)), the node-time a re-boot costs; demand: "
        "break-even, but after 60 s when its group last grew, or grows on average, less often than once per "
        "2 boots + shutdown (keeping it warm costs more than the boots it saves)",
    )
    wait_for_room: Literal["never", "boot", "break-even"] = Field(
        "break-even",
        description="a pending pod waits for room that running pods of learned run time free, instead of a "
        "new node, for up to: boot: one boot time; break-even: the node-time a new node booted for it would "
        "cost (boot + idle wait + shutdown, plus its typical run time up to that much); never: a new node "
        "at once",
    )
    max_booting: int = Field(0, ge=0, description="0: no limit")
    min_spare_nodes: int = Field(0, ge=0)
    max_nodes: int = Field(0, ge=0, description="cluster-wide cap on workers, 0: sum of group max")
    scale_down_underutilized: bool = False
    utilization_threshold: float = Field(0.5, gt=0, le=1)
    provision_timeout: float = Field(900, gt=0)
    batch_idle: float = Field(1.0, gt=0)
    batch_max: float = Field(10.0, gt=0)
    resync_period: float = Field(30.0, gt=0)
    expanders: tuple[Literal["edge-first", "priority", "least-cost", "least-waste"], ...] = (
        "edge-first",
        "priority",
        "least-cost",
        "least-waste",
    )


class WorkerGroup(_Strict):
    """A scalable set of identical cloud VMs, placed on one cloud through the IM."""

    name: Name = "wn"
    cloud: str | None = Field(None, description="cloud profile; default: the cluster's cloud")
    cpus: int = Field(2, ge=1)
    memory: SizeMiB = "4 GiB"  # type: ignore[assignment]
    disk: SizeMiB = "20 GiB"  # type: ignore[assignment]
    gpus: int = Field(0, ge=0)
    instance_type: str | None = None
    image: str | None = None
    arch: Arch = "amd64"
    min: int = Field(0, ge=0)
    max: int = Field(3, ge=0)
    initial: int | None = Field(None, ge=0, description="VMs created with the cluster; default: min")
    labels: dict[str, str] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    cost_per_hour: float = Field(
        0.0, ge=0, description="per VM, for the least-cost expander and the simulator"
    )
    priority: int = Field(0, description="higher is preferred by the priority expander")
    boot_seconds: float = Field(180, gt=0, description="expected power-on to Ready time")

    @model_validator(mode="after")
    def _bounds(self) -> WorkerGroup:
        if self.max < self.min:
            raise _FieldError("max", f"must be >= min ({self.min})")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise _FieldError("initial", f"must be between min ({self.min}) and max ({self.max})")
        return self

    @property
    def initial_count(self) -> int:
        return self.min if self.initial is None else self.initial


class EdgeHost(_Strict):
    address: str = Field(min_length=1)
    name: Name | None = Field(None, description="Kubernetes node name; default derived from the address")
    user: str = "pi"
    mac: str | None = Field(None, pattern=r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
    port: int = Field(22, ge=1, le=65535)


class EdgeGroup(_Strict):
    """Boards we own (Raspberry Pi, arm64): not IM-managed; joined with Ansible, powered by Wake-on-LAN."""

    name: Name = "edge"
    arch: Arch = "arm64"
    power: Literal["wol", "always-on"] = Field(
        "wol", description="wol: woken by Wake-on-LAN; always-on: cordon only"
    )
    cpus: int = Field(4, ge=1)
    memory: SizeMiB = "4 GiB"  # type: ignore[assignment]
    hosts: tuple[EdgeHost, ...] = ()
    ssh_key: str | None = None
    wol_broadcast: str = "255.255.255.255"
    labels: dict[str, str] = Field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    priority: int = 10
    boot_seconds: float = Field(45, gt=0)
    min: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _min_within_hosts(self) -> EdgeGroup:
        if self.min > len(self.hosts):
            raise _FieldError("min", f"must be <= the number of hosts ({len(self.hosts)})")
        if self.power == "wol":
            for index, host in enumerate(self.hosts):
                if host.mac is None:
                    raise _FieldError(f"hosts[{index}].mac", "is required when power is 'wol'")
        return self


class ClusterSpec(_Strict):
    name: Name | None = Field(None, description="generated once (oscar-xxxxxx) and reused when absent")
    cloud: str = Field("local", description="default cloud profile: local, or a name from `deployer clouds`")
    # How the IM gets the TOSCA type definitions: "remote" imports the published URL (any IM can fetch it),
    # "local" imports our shipped file by absolute path (an IM on this machine, offline), "auto" picks
    # local for --cloud local and remote otherwise.
    types: Literal["auto", "remote", "local"] = Field(
        "auto",
        description="how the IM gets TOSCA types: remote URL, local file, or auto (local for --cloud local)",
    )
    front: FrontEnd = Field(default_factory=FrontEnd)
    kubernetes: Kubernetes = Field(default_factory=Kubernetes)
    oscar: Oscar = Field(default_factory=Oscar)
    elasticity: Elasticity = Field(default_factory=Elasticity)
    worker_groups: tuple[WorkerGroup, ...] = (WorkerGroup(),)
    edge_groups: tuple[EdgeGroup, ...] = ()

    @model_validator(mode="after")
    def _unique_group_names(self) -> ClusterSpec:
        seen: dict[str, str] = {}
        for field_name in ("worker_groups", "edge_groups"):
            for index, group in enumerate(getattr(self, field_name)):
                where = f"{field_name}[{index}].name"
                if group.name in seen:
                    raise _FieldError(where, f"'{group.name}' is already used by {seen[group.name]}")
                seen[group.name] = where
        return self

    def clouds(self) -> tuple[str, ...]:
        """Every cloud the cluster touches, front end first, without repeats."""
        names = [self.cloud] + [g.cloud or self.cloud for g in self.worker_groups]
        return tuple(dict.fromkeys(names))

    def group_cloud(self, group: WorkerGroup) -> str:
        return group.cloud or self.cloud


class _FieldError(ValueError):
    """Raised inside validators to report a sub-field path rather than the model's own."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


SECRET_FIELDS: tuple[tuple[str, str], ...] = (
    ("kubernetes", "admin_token"),
    ("oscar", "admin_password"),
    ("oscar", "oscar_password"),
    ("oscar", "minio_password"),
)


# --- validation errors -------------------------------------------------------------------------------


def _format_loc(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "lax-")):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = ClusterSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _spec_error(exc: ValidationError) -> SpecError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    path = _format_loc(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_fields(loc)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(allowed)}"
        return SpecError(path, f"unknown field{hint}")
    ctx_error = err.get("ctx", {}).get("error")
    if isinstance(ctx_error, _FieldError):
        inner = f"{path}.{ctx_error.field}" if path else ctx_error.field
        return SpecError(inner, str(ctx_error).split(": ", 1)[1])
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
        message = "must be lowercase letters, digits and '-', 1-40 chars, starting with a letter"
    return SpecError(path, message)


def validate_spec(data: Any) -> ClusterSpec:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError("", "the spec must be a YAML mapping of fields (name, cloud, worker_groups, ...)")
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(exc) from None


# --- overrides ---------------------------------------------------------------------------------------


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    malformed = ".." in path or path.startswith(".") or path.endswith(".")
    if malformed or not tokens or "".join(tokens) != path.replace(".", ""):
        raise UserError(
            f"--set {path}: not a field path; write e.g. oscar.enabled=false or worker_groups[0].max=5"
        )
    node: Any = data
    for index, token in enumerate(tokens):
        last = index == len(tokens) - 1
        if token.startswith("["):
            position = int(token[1:-1])
            if not isinstance(node, list) or position >= len(node):
                raise UserError(f"--set {path}: {token} is out of range")
            if last:
                node[position] = value
            else:
                node = node[position]
        else:
            if not isinstance(node, dict):
                raise UserError(f"--set {path}: '{token}' is not inside a mapping")
            if last:
                node[token] = value
            else:
                nxt = tokens[index + 1]
                node = node.setdefault(token, [] if nxt.startswith("[") else {})
    return None


def apply_overrides(data: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``--set a.b=value`` assignments; values are parsed as YAML scalars (``false``, ``3``, ``"x"``)."""
    result = yaml.safe_load(yaml.safe_dump(data)) if data else {}
    for assignment in assignments:
        path, sep, raw = assignment.partition("=")
        if not sep or not path.strip():
            raise UserError(f"--set {assignment}: expected FIELD=VALUE, e.g. oscar.enabled=false")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict | list) and not raw.strip().startswith(("{", "[")):
            value = raw
        if path.strip() in ("worker_groups", "edge_groups") or path.strip().startswith(
            ("worker_groups[", "edge_groups[")
        ):
            result.setdefault(path.split("[")[0].strip(), [{}])
        _set_path(result, path.strip(), value)
    return result


def read_yaml_file(path: Path, kind: str) -> Any:
    """The parsed YAML of a ``kind`` file (spec, FDL); one-line errors for a missing file or bad syntax."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such {kind} file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {kind} file ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{path}{where}: {problem}; fix the YAML syntax") from None


def read_spec_file(path: Path) -> dict[str, Any]:
    data = read_yaml_file(path, "spec")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the spec must be a YAML mapping (name, cloud, worker_groups, ...)")
    return data


def load_spec(
    path: Path | None,
    overrides: list[str] | None = None,
    *,
    cloud: str | None = None,
    name: str | None = None,
    workers: int | None = None,
) -> ClusterSpec:
    """Spec file (optional) + flags. Flags win: ``--cloud``, ``--name``, ``--workers`` (first group)."""
    data = read_spec_file(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    if cloud is not None:
        data["cloud"] = cloud
    if name is not None:
        data["name"] = name
    if workers is not None:
        groups = data.setdefault("worker_groups", [{}])
        if not groups:
            groups.append({})
        first = groups[0]
        first["initial"] = workers
        if workers > int(first.get("max", WorkerGroup.model_fields["max"].default)):
            first["max"] = workers
    try:
        return validate_spec(data)
    except SpecError as err:
        if path is not None:
            raise SpecError(f"{path}: {err.path}" if err.path else str(path), err.detail) from None
        raise


# --- secrets -----------------------------------------------------------------------------------------


def secret_values(spec: ClusterSpec) -> dict[str, str]:
    """The spec's secrets that are set, keyed ``section.field``."""
    values = {}
    for section, field_name in SECRET_FIELDS:
        value = getattr(getattr(spec, section), field_name)
        if value:
            values[f"{section}.{field_name}"] = value
    return values


def fill_secrets(
    spec: ClusterSpec, stored: dict[str, str], generate: Callable[[], str]
) -> tuple[ClusterSpec, dict[str, str]]:
    """Give every secret a value: the spec's own, else the one stored for this cluster, else a new one.

    Returns the completed spec and the full secret map for the caller to persist (0600), so the next
    render of the same spec is byte-identical.
    """
    resolved = dict(stored)
    resolved.update(secret_values(spec))
    updates: dict[str, dict[str, str]] = {}
    for section, field_name in SECRET_FIELDS:
        key = f"{section}.{field_name}"
        if key not in resolved:
            resolved[key] = generate()
        updates.setdefault(section, {})[field_name] = resolved[key]
    sections = {name: getattr(spec, name).model_copy(update=values) for name, values in updates.items()}
    return spec.model_copy(update=sections), {k: resolved[k] for k in sorted(resolved)}
