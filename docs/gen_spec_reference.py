"""Regenerate docs/spec.md from the spec model: `python docs/gen_spec_reference.py > docs/spec.md`.

tests/core/test_spec.py checks that every field of the model appears in docs/spec.md.
"""

from __future__ import annotations

from pydantic import BaseModel

from deployer.core import spec as model

SECTIONS = [
    ("Top level", model.ClusterSpec, ""),
    ("front", model.FrontEnd, "front."),
    ("kubernetes", model.Kubernetes, "kubernetes."),
    ("oscar", model.Oscar, "oscar."),
    ("elasticity", model.Elasticity, "elasticity."),
    ("worker_groups[]", model.WorkerGroup, "worker_groups[N]."),
    ("edge_groups[]", model.EdgeGroup, "edge_groups[N]."),
    ("edge_groups[].hosts[]", model.EdgeHost, "edge_groups[N].hosts[M]."),
    ("taints[] (worker and edge groups)", model.Taint, "taints[K]."),
]


def _type(field) -> str:
    if any("BeforeValidator" in repr(m) for m in field.metadata):
        return "size"
    if any("pattern" in repr(m) for m in field.metadata) or "pattern=" in repr(field.annotation):
        return "name (`a-z0-9-`, 1-40 chars)"
    text = repr(field.annotation)
    for noise in ("typing.", "deployer.core.spec.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("Optional[", "").rstrip("]") if text.startswith("Optional[") else text


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "see its section" if isinstance(value, BaseModel) else f"`{value!r}`"
    value = field.default
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return "one group named `wn`"
    return f"`{value!r}`"


def main() -> None:
    print("# Cluster spec reference\n")
    print("Generated from `deployer/core/spec.py` by `docs/gen_spec_reference.py`.\n")
    print("Every field is optional. Sizes take `8 GiB`, `512 MiB`, `8G` or a bare number of GiB.")
    print("Unknown keys are errors (with a did-you-mean hint). Override any field from the command line with")
    print("`--set path=value`, e.g. `--set worker_groups[0].max=5` or `--set oscar.enabled=false`.\n")
    for title, section, prefix in SECTIONS:
        print(f"## {title}\n")
        if section.__doc__ and section is not model.ClusterSpec:
            print(section.__doc__.strip() + "\n")
        print("| field | type | default | notes |\n|---|---|---|---|")
        for name, field in section.model_fields.items():
            cells = [f"`{prefix}{name}`", _type(field), _default(field), field.description or ""]
            print("| " + " | ".join(cell.replace("|", "or") for cell in cells) + " |")
        print()


if __name__ == "__main__":
    main()
