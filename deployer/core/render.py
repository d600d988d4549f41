"""Render a cluster spec into TOSCA for the Infrastructure Manager.

Pure: spec + options in, YAML text out (the only file access is reading our own templates). Called by
``deployer render``/``validate``, by ``create`` (through ``deployer.lifecycle.prepare``) and by the daemon's
IM power manager, which re-renders with new group counts.

Safety: every value a template prints goes through ``_yaml_scalar`` (the environment's ``finalize``), so a
spec value with quotes, newlines, ``{{ }}``, ``: `` or anchors stays one string and never becomes YAML
structure or Jinja code. The sandboxed environment with StrictUndefined fails on any unknown variable.
The result is parsed and dumped again, so output is canonical: same input, byte-identical TOSCA.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from deployer import __version__
from deployer.assets import asset_dir
from deployer.core.elasticity.scheduling import GROUP_LABEL
from deployer.core.spec import SECRET_FIELDS, ClusterSpec, WorkerGroup

# Where a remote IM fetches the type definitions our templates use (GRyCAP's published types, which carry
# the Ansible implementations that install Kubernetes and OSCAR).
PUBLISHED_TYPES_URL = "https://raw.githubusercontent.com/grycap/tosca/main/custom_types.yaml"
REDACTED = "<redacted>"  # 10 chars: still satisfies the 8-char MinIO constraint when validating
WORKER_HOSTNAME = "{group}-#N#"  # the IM replaces #N# with the VM id; the daemon maps node names back
DEFAULT_LOCAL_IMAGE = "dummy://deployer/ubuntu-22.04"


def types_file() -> Path:
    return asset_dir("tosca_templates") / "types" / "deployer-types.yaml"


def cloud_auth_id(cloud: str) -> str:
    """The IM auth-entry id for a cloud profile name, also used as the TOSCA placement ``cloud_id``."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", cloud)
    return ident if ident[:1].isalpha() else f"cloud_{ident}"


def node_id(group_name: str) -> str:
    """TOSCA node-template name of a worker group's VMs (``wn-gpu`` → ``wn_gpu_vm``)."""
    return group_name.replace("-", "_") + "_vm"


@dataclass(frozen=True)
class RenderOptions:
    # "local": import our types file by absolute path; "remote": import PUBLISHED_TYPES_URL.
    types: str = "remote"
    # "remote" only: the types URL to import instead, pinned to a commit by a lock file.
    types_url: str | None = None
    # The local profile has simulated VMs: no public IP (Dummy never assigns one) and a dummy image.
    simulated: bool = False
    # Cloud profile name -> default VM image for that cloud (``egi://site/image?vo``, ``ost://…``).
    default_images: Mapping[str, str] = field(default_factory=dict)
    # Unique id of one deployment, so an ambiguous create can be recognised among the IM's infrastructures.
    deployment_tag: str | None = None
    # Current/target VM counts per worker group (the daemon and ``scale`` override the spec's initial counts).
    counts: Mapping[str, int] = field(default_factory=dict)
    # IM VM ids to remove per group when a count goes down.
    removal_lists: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _yaml_scalar(value: Any) -> str:
    """Every printed value becomes a JSON scalar/collection, which YAML reads back as the same data."""
    if isinstance(value, _Raw):
        return value.text
    return json.dumps(value, ensure_ascii=True, sort_keys=True)


class _Raw:
    """Template-internal literal (only our own constants, never user data)."""

    def __init__(self, text: str) -> None:
        self.text = text


@cache
def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(asset_dir("tosca_templates"))),
        undefined=StrictUndefined,
        finalize=_yaml_scalar,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _group_context(spec: ClusterSpec, group: WorkerGroup, options: RenderOptions) -> dict[str, Any]:
    cloud = spec.group_cloud(group)
    image = group.image or options.default_images.get(cloud)
    if image is None and options.simulated:
        image = DEFAULT_LOCAL_IMAGE
    count = options.counts.get(group.name, group.initial_count)
    return {
        "name": group.name,
        "vm": node_id(group.name),
        "wn": group.name.replace("-", "_") + "_wn",
        "hostname": WORKER_HOSTNAME.format(group=group.name),
        "cloud_id": cloud_auth_id(cloud),
        "cpus": group.cpus,
        "memory": f"{group.memory} MiB",
        "disk": f"{group.disk} MiB",
        "gpus": group.gpus,
        "instance_type": group.instance_type,
        "image": image,
        "arch": group.arch,
        "count": count,
        "min": group.min,
        "max": group.max,
        "removal_list": list(options.removal_lists.get(group.name, ())),
        "tags": {GROUP_LABEL: group.name, **group.labels},
    }


def render_tosca(spec: ClusterSpec, options: RenderOptions) -> str:
    """The TOSCA document for ``spec``. ``spec.name`` and its secrets must already be filled in."""
    if spec.name is None:
        raise ValueError("render_tosca needs a named spec; the caller resolves generated names")
    types_ref = str(types_file()) if options.types == "local" else options.types_url or PUBLISHED_TYPES_URL
    front_image = spec.front.image or options.default_images.get(spec.cloud)
    if front_image is None and options.simulated:
        front_image = DEFAULT_LOCAL_IMAGE
    clouds = spec.clouds()
    context = {
        "spec": spec,
        "version": __version__,
        "types_ref": types_ref,
        "tag": options.deployment_tag,
        "front_cloud_id": cloud_auth_id(spec.cloud),
        "front_public": spec.front.public_ip and not options.simulated,
        "front_image": front_image,
        "front_memory": f"{spec.front.memory} MiB",
        "front_disk": f"{spec.front.disk} MiB",
        "minio_size": f"{spec.oscar.minio_storage} MiB",
        "groups": [_group_context(spec, g, options) for g in spec.worker_groups],
        "multi_cloud": len(clouds) > 1,
        "cloud_ids": [cloud_auth_id(c) for c in clouds],
        "elasticity_config": _elasticity_config(spec),
    }
    text = _environment().get_template("cluster.yaml.j2").render(context)
    document = yaml.safe_load(text)
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=False
    )


def _elasticity_config(spec: ClusterSpec) -> str:
    """The daemon's settings as one JSON string property (the IM passes it through untouched)."""
    data = {
        "elasticity": spec.elasticity.model_dump(mode="json"),
        "worker_groups": [
            {k: v for k, v in g.model_dump(mode="json").items() if k not in ("image",)}
            for g in spec.worker_groups
        ],
        "edge_groups": [g.model_dump(mode="json", exclude={"ssh_key"}) for g in spec.edge_groups],
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def redacted(spec: ClusterSpec) -> ClusterSpec:
    """The spec with every secret replaced by a placeholder: renders a copy that is safe to store."""
    updates: dict[str, dict[str, str]] = {}
    for section, field_name in SECRET_FIELDS:
        updates.setdefault(section, {})[field_name] = REDACTED
    return spec.model_copy(
        update={name: getattr(spec, name).model_copy(update=values) for name, values in updates.items()}
    )
