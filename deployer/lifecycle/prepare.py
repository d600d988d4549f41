"""Turn "spec file + flags" into the exact TOSCA to submit: one path for render, create and the daemon.

Resolves the things the pure core leaves open: a generated cluster name (persisted once), generated
secrets (persisted 0600, reused, so re-rendering is byte-identical), how the IM gets the type definitions,
default images from cloud profiles, and whether the clouds are simulated (every one of kind local).
Returns both the real TOSCA and a redacted copy that is safe to store or print, and the placement
findings (``deployer.core.placement.hybrid_findings``): ``create`` stops on an error, ``render`` warns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.state.secrets import SecretStore, new_secret
from deployer.core.placement import Finding, hybrid_findings
from deployer.core.render import RenderOptions, redacted, render_tosca
from deployer.core.spec import ClusterSpec, fill_secrets, load_spec
from deployer.errors import NotFoundError, UserError
from deployer.paths import Paths

LOCAL_CLOUD = "local"


@dataclass(frozen=True)
class PreparedCluster:
    spec: ClusterSpec  # complete: name and secrets filled in
    tosca: str  # carries secrets: submit it, never store or log it
    tosca_redacted: str
    deployment_tag: str | None
    spec_hash: str  # of the redacted spec: changes when the cluster definition does
    types: str  # "local" or "remote"
    # Every VM is a Dummy VM of a local IM: its address (10.0.0.1) is nobody's and must never be dialled.
    simulated: bool = False
    findings: tuple[Finding, ...] = ()  # placement problems; see ``check_placement``


def types_mode(spec: ClusterSpec, simulated: bool | None = None) -> str:
    if spec.types != "auto":
        return spec.types
    simulated = spec.cloud == LOCAL_CLOUD if simulated is None else simulated
    return "local" if simulated else "remote"


def check_placement(prepared: PreparedCluster) -> None:
    """Stop on the placement errors (one line); nothing has been submitted or recorded yet."""
    errors = [f.message for f in prepared.findings if f.level == "error"]
    if errors:
        raise UserError(f"cluster {prepared.spec.name}: {'; '.join(errors)}")


def spec_hash(spec: ClusterSpec) -> str:
    payload = json.dumps(redacted(spec).model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def render_prepared(
    spec: ClusterSpec,
    *,
    deployment_tag: str | None = None,
    default_images: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    removal_lists: Mapping[str, tuple[str, ...]] | None = None,
    simulated: bool | None = None,
    findings: tuple[Finding, ...] = (),
    types_url: str | None = None,
) -> PreparedCluster:
    """Render an already complete spec (name + secrets), e.g. again with new group counts.
    ``simulated`` defaults to "the front end is on the built-in local cloud"."""
    simulated = spec.cloud == LOCAL_CLOUD if simulated is None else simulated
    options = RenderOptions(
        types=types_mode(spec, simulated),
        types_url=types_url,
        simulated=simulated,
        default_images=dict(default_images or {}),
        deployment_tag=deployment_tag,
        counts=dict(counts or {}),
        removal_lists=dict(removal_lists or {}),
    )
    return PreparedCluster(
        spec=spec,
        tosca=render_tosca(spec, options),
        tosca_redacted=render_tosca(redacted(spec), options),
        deployment_tag=deployment_tag,
        spec_hash=spec_hash(spec),
        types=options.types,
        simulated=simulated,
        findings=findings,
    )


def complete_spec(paths: Paths, spec: ClusterSpec, source: str) -> ClusterSpec:
    """Fill in the generated name and secrets, persisting them so the next run reuses them."""
    store = SecretStore(paths)
    if spec.name is None:
        spec = spec.model_copy(update={"name": store.generated_name(source)})
    assert spec.name is not None
    spec, values = fill_secrets(spec, store.load(spec.name), new_secret)
    store.save(spec.name, values)
    return spec


def prepare_cluster(
    paths: Paths,
    spec_file: Path | None,
    *,
    cloud: str | None = None,
    name: str | None = None,
    overrides: list[str] | None = None,
    workers: int | None = None,
    deployment_tag: str | None = None,
    default_images: Mapping[str, str] | None = None,
) -> PreparedCluster:
    """A spec file (or a lock file: checked, then rendered exactly as locked) plus flags, rendered."""
    from deployer.lifecycle.lockfile import is_lock_file, load_locked

    types_url = None
    if is_lock_file(spec_file):
        assert spec_file is not None
        if cloud is not None or overrides or workers is not None:
            raise UserError(
                f"{spec_file} is a lock file: it takes no --cloud, --set or --workers (only --name)"
            )
        spec, pins = load_locked(paths, spec_file, name=name)
        types_url = pins["types"].get("url")
    else:
        spec = load_spec(spec_file, overrides, cloud=cloud, name=name, workers=workers)
    kinds = cloud_kinds(paths, spec)
    source = str(spec_file.resolve()) if spec_file is not None else f"<flags:{spec.cloud}>"
    spec = complete_spec(paths, spec, source)
    if default_images is None:
        default_images = profile_images(paths, spec)
    return render_prepared(
        spec,
        deployment_tag=deployment_tag,
        default_images=default_images,
        simulated=all(kinds.get(c) == LOCAL_CLOUD for c in spec.clouds()),
        findings=tuple(hybrid_findings(spec, kinds)),
        types_url=types_url,
    )


def cloud_kinds(paths: Paths, spec: ClusterSpec) -> dict[str, str]:
    """Cloud name -> profile kind, for the spec's clouds that have a profile (``local`` always has)."""
    from deployer.adapters.clouds.profiles import get_profile

    kinds = {}
    for cloud in spec.clouds():
        try:
            kinds[cloud] = get_profile(paths, cloud).kind
        except NotFoundError:
            continue  # rendering still works; create fails on the missing credentials instead
    return kinds


def profile_images(paths: Paths, spec: ClusterSpec) -> Mapping[str, str]:
    """Default images from the cloud profiles. A cloud without a profile has none: rendering still works
    (the IM then picks by the os properties), and ``create`` fails on the missing credentials instead."""
    from deployer.adapters.clouds.profiles import default_images

    images: dict[str, str] = {}
    for cloud in spec.clouds():
        try:
            images.update(default_images(paths, [cloud]))
        except NotFoundError:
            continue
    return images
