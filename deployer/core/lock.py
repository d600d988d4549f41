"""Lock files: a spec plus everything that could drift between two creates of "the same" cluster.

Pure: dictionaries in, dictionaries and text out. ``deployer.lifecycle.lockfile`` resolves the pins (it
reads templates, asks GitHub and the clouds) and calls these to build, compare and apply them.

A lock file is YAML::

    deployer_lock: 1
    pins:                      # what was resolved at `deployer lock` time
      deployer: 0.1.0
      template: {name: deployer-cluster, version: 0.1.0, sha256: ...}
      types: {mode: remote, url: https://raw.githubusercontent.com/grycap/tosca/<commit>/..., commit: ...}
      kubernetes: {version: "1.30"}
      oscar: {enabled: true, installed_by: ...}
      images: {front: ..., wn: ...}
      flavors: {front: ..., wn: ...}   # only for clouds whose flavors are discovered
    spec: {...}                # the cluster spec, without secrets (each cluster generates its own)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOCK_KEY = "deployer_lock"
LOCK_FORMAT = 1
FRONT = "front"
UNAVAILABLE = "(no longer available)"


def is_lock(data: Mapping[str, Any]) -> bool:
    return LOCK_KEY in data


def lock_document(spec_data: Mapping[str, Any], pins: Mapping[str, Any]) -> dict[str, Any]:
    return {LOCK_KEY: LOCK_FORMAT, "pins": dict(pins), "spec": dict(spec_data)}


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        flat: dict[str, Any] = {}
        for key in sorted(data):
            flat.update(_flatten(data[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def lock_diff(locked: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line per pin that differs: ``types.commit: locked abc, now (no longer available)``."""
    before, after = _flatten(locked), _flatten(now)
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"{key}: locked {_show(before.get(key))}, now {_show(after.get(key))}")
    return lines


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)


def pinned_spec_data(spec_data: Mapping[str, Any], pins: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with the locked images and flavors written into it explicitly (front and each group)."""
    data = {key: value for key, value in spec_data.items()}
    images: Mapping[str, str] = pins.get("images") or {}
    flavors: Mapping[str, str] = pins.get("flavors") or {}
    front = dict(data.get("front") or {})
    if images.get(FRONT):
        front["image"] = images[FRONT]
    if flavors.get(FRONT):
        front["instance_type"] = flavors[FRONT]
    data["front"] = front
    groups = []
    for group in data.get("worker_groups") or []:
        group = dict(group)
        name = group.get("name", "wn")
        if images.get(name):
            group["image"] = images[name]
        if flavors.get(name):
            group["instance_type"] = flavors[name]
        groups.append(group)
    if groups:
        data["worker_groups"] = groups
    return data


# ---- export: a spec back from a deployment's TOSCA -----------------------------------------------


def spec_data_from_tosca(
    document: Mapping[str, Any], *, cloud_names: Mapping[str, str], group_label: str
) -> dict[str, Any]:
    """The spec a deployment's TOSCA (as rendered by deployer, current counts from the IM) was made from.
    Sizes come back as the "N MiB" strings the renderer wrote, which the spec reads unchanged.

    ``cloud_names`` maps TOSCA placement ids back to cloud profile names. Secrets are left out: a
    recreated cluster generates its own.
    """
    topology = document.get("topology_template") or {}
    nodes: Mapping[str, Any] = topology.get("node_templates") or {}
    front_cloud = None
    group_clouds: dict[str, str] = {}
    for policy in topology.get("policies") or []:
        for policy_name, body in policy.items():
            cloud = cloud_names.get(str((body.get("properties") or {}).get("cloud_id")))
            if policy_name == "front_on_cloud":
                front_cloud = cloud
            elif cloud is not None:
                group_clouds[policy_name.removesuffix("_on_cloud")] = cloud
    front = nodes.get("front") or {}
    caps = front.get("capabilities") or {}
    host = (caps.get("host") or {}).get("properties") or {}
    front_os = (caps.get("os") or {}).get("properties") or {}
    endpoint = (caps.get("endpoint") or {}).get("properties") or {}
    data: dict[str, Any] = {
        "name": (document.get("metadata") or {}).get("cluster_name"),
        "cloud": front_cloud or next(iter(cloud_names.values()), "local"),
        "front": _without_none(
            {
                "cpus": host.get("num_cpus"),
                "memory": host.get("mem_size"),
                "disk": host.get("disk_size"),
                "instance_type": host.get("instance_type"),
                "image": front_os.get("image"),
                "public_ip": endpoint.get("network_name") == "PUBLIC" or "net_public" in nodes or None,
            }
        ),
    }
    imports = document.get("imports") or []
    types_ref = next((str(v) for item in imports for v in (item or {}).values()), "")
    data["types"] = "local" if types_ref.startswith("/") else "remote"
    lrms = (nodes.get("lrms_front_end") or {}).get("properties") or {}
    data["kubernetes"] = _without_none(
        {
            "version": lrms.get("version"),
            "cri": lrms.get("cri_runtime"),
            "ingress": lrms.get("install_ingress"),
            "cert_manager": lrms.get("cert_manager"),
            "public_dns_name": lrms.get("public_dns_name") or None,
        }
    )
    storage = ((nodes.get("front_storage") or {}).get("properties") or {}).get("size")
    data["oscar"] = _without_none({"enabled": "oscar" in nodes, "minio_storage": storage})
    daemon = (nodes.get("elasticity") or {}).get("properties") or {}
    config = _json(daemon.get("config"))
    data["elasticity"] = {**(config.get("elasticity") or {}), "enabled": bool(daemon)}
    configured_groups = {g["name"]: g for g in config.get("worker_groups") or []}
    groups = []
    for node_name, node in nodes.items():
        node_caps = (node or {}).get("capabilities") or {}
        scalable = (node_caps.get("scalable") or {}).get("properties")
        if not scalable:
            continue
        tags = dict(((node or {}).get("properties") or {}).get("tags") or {})
        name = str(tags.pop(group_label, node_name.removesuffix("_vm").replace("_", "-")))
        group_host = (node_caps.get("host") or {}).get("properties") or {}
        group_os = (node_caps.get("os") or {}).get("properties") or {}
        arch = group_os.get("architecture")
        group = {
            **configured_groups.get(name, {}),
            **_without_none(
                {
                    "name": name,
                    "cloud": group_clouds.get(name.replace("-", "_")),
                    "cpus": group_host.get("num_cpus"),
                    "memory": group_host.get("mem_size"),
                    "disk": group_host.get("disk_size"),
                    "gpus": group_host.get("num_gpus"),
                    "instance_type": group_host.get("instance_type"),
                    "image": group_os.get("image"),
                    "arch": {"x86_64": "amd64", "arm64": "arm64"}.get(str(arch)),
                    "min": scalable.get("min_instances"),
                    "max": scalable.get("max_instances"),
                    "labels": tags,
                }
            ),
        }
        count = scalable.get("count")
        initial = group.get("initial")
        if count is not None and int(count) != (group.get("min", 0) if initial is None else initial):
            # Recreate the group as it is now (within its bounds), not as it started.
            group["initial"] = max(group.get("min", 0), min(int(count), group.get("max", int(count))))
        groups.append(group)
    data["worker_groups"] = groups
    data["edge_groups"] = config.get("edge_groups") or []
    return _without_none(data)


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _json(text: Any) -> dict[str, Any]:
    import json

    if not text:
        return {}
    try:
        value = json.loads(str(text))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
