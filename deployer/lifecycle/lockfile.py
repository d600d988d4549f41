"""Resolve, write and check lock files (``deployer lock``, ``deployer create LOCK``, ``deployer export``).

Called by ``deployer.lifecycle.prepare`` (a lock file given where a spec is expected) and the CLI. What
gets pinned (see ``deployer.core.lock`` for the format):

- the deployer version and the SHA-256 of the cluster template;
- the TOSCA types: our shipped file by SHA-256 (``types: local``), or the published types URL rewritten
  to the commit its branch points to now, asked from the GitHub API (``types: remote``);
- the Kubernetes version and whether OSCAR is installed (OSCAR's release comes with the types commit);
- per node (front end, each worker group) the image, and for OpenStack clouds the flavor and the image
  id that discovery chose (``deployer.adapters.clouds.discovery``).

Checking a lock resolves everything again from the lock's spec and lists every difference; a remote
types commit is not re-resolved (it is pinned) but must still exist. ``DEPLOYER_GITHUB_API`` points the
commit lookups elsewhere (a mirror, or the tests' loopback fake).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer import __version__
from deployer.core.lock import FRONT, UNAVAILABLE, is_lock, lock_diff, lock_document, pinned_spec_data
from deployer.core.render import DEFAULT_LOCAL_IMAGE, PUBLISHED_TYPES_URL, types_file
from deployer.core.spec import SECRET_FIELDS, ClusterSpec, read_spec_file, validate_spec
from deployer.errors import RemoteError, UserError
from deployer.paths import Paths

TEMPLATE_NAME = "deployer-cluster"
GITHUB_API = "https://api.github.com"
TYPES_REPO = "grycap/tosca"
TYPES_BRANCH = "main"
HTTP_TIMEOUT = (5.0, 20.0)


class LockMismatch(UserError):
    """Something the lock pins is no longer available or resolves differently now."""


def is_lock_file(path: Path | None) -> bool:
    return path is not None and path.is_file() and is_lock(read_spec_file(path))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def template_pin() -> dict[str, str]:
    from deployer.assets import asset_dir

    return {
        "name": TEMPLATE_NAME,
        "version": __version__,
        "sha256": sha256_file(asset_dir("tosca_templates") / "cluster.yaml.j2"),
    }


def _github_api(env: Mapping[str, str]) -> str:
    return (env.get("DEPLOYER_GITHUB_API") or GITHUB_API).rstrip("/")


def _types_url(commit: str) -> str:
    return PUBLISHED_TYPES_URL.replace(f"/{TYPES_BRANCH}/", f"/{commit}/")


def _commit_of(ref: str, env: Mapping[str, str]) -> str | None:
    """The full commit id ``ref`` names in the types repository; None when GitHub does not know it."""
    import requests

    url = f"{_github_api(env)}/repos/{TYPES_REPO}/commits/{ref}"
    try:
        response = requests.get(url, headers={"Accept": "application/vnd.github.sha"}, timeout=HTTP_TIMEOUT)
    except requests.RequestException as err:
        raise RemoteError(
            f"cannot ask GitHub for the types commit ({url}): {err.__class__.__name__}"
        ) from None
    if response.status_code in (404, 422):
        return None
    if response.status_code != 200:
        raise RemoteError(f"GitHub answered {response.status_code} for {url}", status=response.status_code)
    commit = response.text.strip()
    if not re.fullmatch(r"[0-9a-f]{40}", commit):  # it goes into the URL the IM fetches: nothing else may
        raise RemoteError(
            f"{url} did not answer a commit id (got {commit[:40]!r}); check DEPLOYER_GITHUB_API"
        )
    return commit


def types_pin(mode: str, env: Mapping[str, str], locked: Mapping[str, Any] | None = None) -> dict[str, str]:
    if mode == "local":
        return {"mode": "local", "sha256": sha256_file(types_file())}
    if locked and locked.get("mode") == "remote" and locked.get("commit"):
        commit = str(locked["commit"])  # pinned: only check that it still exists
        found = _commit_of(commit, env)
        return {"mode": "remote", "commit": commit if found else UNAVAILABLE, "url": _types_url(commit)}
    commit = _commit_of(TYPES_BRANCH, env)
    if commit is None:
        raise RemoteError(f"GitHub does not know branch {TYPES_BRANCH} of {TYPES_REPO}")
    return {"mode": "remote", "commit": commit, "url": _types_url(commit)}


def _discovered(
    paths: Paths, spec: ClusterSpec, env: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(images, flavors) per node for the spec's OpenStack clouds: the flavor discovery picks from
    cpus/memory/gpus unless the spec names one, and the profile's image resolved to its id."""
    from urllib.parse import urlparse

    from deployer.adapters.clouds import discovery
    from deployer.adapters.clouds.profiles import get_profile, openstack_config
    from deployer.core.placement import choose_flavor

    images: dict[str, str] = {}
    flavors: dict[str, str] = {}
    nodes = [(FRONT, spec.cloud, spec.front)] + [(g.name, spec.group_cloud(g), g) for g in spec.worker_groups]
    listings: dict[str, tuple[list[Any], list[Any], str | None]] = {}
    for node, cloud, sizing in nodes:
        profile = get_profile(paths, cloud)
        if profile.kind != "openstack":
            continue
        if cloud not in listings:
            config = openstack_config(profile, env)
            host = urlparse(str((config.get("auth") or {}).get("auth_url", ""))).hostname
            conn = discovery.connection_for(config)
            listings[cloud] = (
                discovery.openstack_flavors(conn),
                discovery.openstack_images(conn, host),
                host,
            )
        offered, offered_images, host = listings[cloud]
        wanted = sizing.instance_type
        if wanted is None:
            gpus = getattr(sizing, "gpus", 0)
            choice = choose_flavor(offered, cpus=sizing.cpus, memory_mib=sizing.memory, gpus=gpus)
            flavors[node] = choice.flavor.name if choice.flavor else UNAVAILABLE
        else:
            flavors[node] = wanted if any(f.name == wanted for f in offered) else UNAVAILABLE
        image = sizing.image or profile.get("image")
        if image and "://" not in image:
            match = next((i for i in offered_images if image in (i.id, i.name)), None)
            images[node] = f"ost://{host}/{match.id}" if match else UNAVAILABLE
    return images, flavors


def resolve_pins(
    paths: Paths,
    spec: ClusterSpec,
    *,
    env: Mapping[str, str] | None = None,
    locked: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything that could drift, resolved now. ``locked``: the pins of an existing lock (being checked)."""
    from deployer.lifecycle.prepare import LOCAL_CLOUD, cloud_kinds, profile_images, types_mode

    env = dict(os.environ) if env is None else env
    kinds = cloud_kinds(paths, spec)
    simulated = all(kinds.get(c) == LOCAL_CLOUD for c in spec.clouds())
    defaults = profile_images(paths, spec)
    images = {FRONT: spec.front.image or defaults.get(spec.cloud)}
    for group in spec.worker_groups:
        images[group.name] = group.image or defaults.get(spec.group_cloud(group))
    if simulated:
        images = {node: image or DEFAULT_LOCAL_IMAGE for node, image in images.items()}
    discovered_images, flavors = _discovered(paths, spec, env)
    images.update(discovered_images)
    pins: dict[str, Any] = {
        "deployer": __version__,
        "template": template_pin(),
        "types": types_pin(types_mode(spec, simulated), env, (locked or {}).get("types")),
        "kubernetes": {"version": spec.kubernetes.version},
        "oscar": {"enabled": spec.oscar.enabled, "installed_by": "the types (pinned above)"},
        "images": {node: image for node, image in images.items() if image},
    }
    if flavors:
        pins["flavors"] = flavors
    return pins


def spec_data_without_secrets(spec: ClusterSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    for section, field_name in SECRET_FIELDS:
        data[section][field_name] = None
    return data


def build_lock(paths: Paths, spec: ClusterSpec, *, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return lock_document(spec_data_without_secrets(spec), resolve_pins(paths, spec, env=env))


def lock_text(document: Mapping[str, Any]) -> str:
    header = "# deployer lock file: `deployer create THIS_FILE` recreates the cluster or shows what drifted\n"
    return header + yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False, width=1000)


def write_lock(path: Path, document: Mapping[str, Any]) -> None:
    """Atomically (the lock holds no secret, but a half-written lock must never be read)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(lock_text(document))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_locked(
    paths: Paths, path: Path, *, name: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[ClusterSpec, dict[str, Any]]:
    """The lock's spec with its pins applied, after checking that every pin still resolves the same.

    ``name`` (``--name``) is the only change a lock accepts: a lab recreates the cluster under a new name.
    """
    document = read_spec_file(path)
    pins = document.get("pins")
    spec_data = document.get("spec")
    if not isinstance(pins, dict) or not isinstance(spec_data, dict):
        raise UserError(
            f"{path}: not a complete lock file (needs 'pins' and 'spec'); write it with `deployer lock`"
        )
    if name is not None:
        spec_data = {**spec_data, "name": name}
    spec = validate_spec(spec_data)
    differences = lock_diff(pins, resolve_pins(paths, spec, env=env, locked=pins))
    if differences:
        raise LockMismatch(
            f"{path}: the cluster can no longer be reproduced as locked:\n  "
            + "\n  ".join(differences)
            + "\nRun `deployer lock` again to accept the new values, or restore what changed."
        )
    return validate_spec(pinned_spec_data(spec_data, pins)), pins


def export_deployment(
    paths: Paths, name: str, *, token: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec, lock) that recreate a deployment as it is now: the spec read back from the IM's copy of
    its TOSCA (current worker counts), the lock pinning what that TOSCA used."""
    from deployer.core.elasticity.scheduling import GROUP_LABEL
    from deployer.core.lock import spec_data_from_tosca
    from deployer.core.render import cloud_auth_id
    from deployer.lifecycle.create import client_for_record, open_store
    from deployer.lifecycle.credentials import record_clouds
    from deployer.lifecycle.deploy import vm_views

    record = open_store(paths).get(name)
    if not record.infrastructure_id:
        raise UserError(f"deployment {name!r} has no infrastructure yet; see `deployer status {name}`")
    with client_for_record(paths, record, token=token) as client:
        document = yaml.safe_load(client.tosca(record.infrastructure_id)) or {}
        live = Counter(vm.node for vm in vm_views(client, record.infrastructure_id))
    # The IM's copy keeps the counts of the create (scales add and remove VMs one group at a time, never
    # by posting counts): the VMs that exist now are the truth.
    for node, template in ((document.get("topology_template") or {}).get("node_templates") or {}).items():
        scalable = ((template or {}).get("capabilities") or {}).get("scalable")
        if isinstance(scalable, dict):
            scalable.setdefault("properties", {})["count"] = live.get(node, 0)
    cloud_names = {cloud_auth_id(cloud): cloud for cloud in record_clouds(record)}
    spec = validate_spec(spec_data_from_tosca(document, cloud_names=cloud_names, group_label=GROUP_LABEL))
    imported = next((str(v) for item in document.get("imports") or [] for v in (item or {}).values()), "")
    locked_types = None
    prefix, _, rest = imported.partition(PUBLISHED_TYPES_URL.split(f"/{TYPES_BRANCH}/")[0] + "/")
    if not prefix and rest and not rest.startswith(f"{TYPES_BRANCH}/"):
        locked_types = {"mode": "remote", "commit": rest.split("/", 1)[0]}  # already pinned: keep it
    pins = resolve_pins(paths, spec, env=env, locked={"types": locked_types} if locked_types else None)
    rendered_by = str((document.get("metadata") or {}).get("template_version") or "")
    if rendered_by and rendered_by != __version__:
        # Rendered by another deployer: its template is not ours, so a create from this lock refuses.
        pins["deployer"] = rendered_by
        pins["template"] = {
            **pins["template"],
            "version": rendered_by,
            "sha256": f"(template of deployer {rendered_by})",
        }
    spec_data = spec_data_without_secrets(spec)
    return spec_data, lock_document(spec_data, pins)
