"""The cluster spec model: defaults, overrides and every validation error path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.core.spec import (
    ClusterSpec,
    apply_overrides,
    fill_secrets,
    load_spec,
    parse_size_mib,
    secret_values,
    validate_spec,
)
from deployer.errors import SpecError, UserError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_empty_spec_is_a_complete_single_cloud_cluster():
    spec = validate_spec({})
    assert spec.cloud == "local"
    assert spec.front.cpus == 2 and spec.front.memory == 4096 and spec.front.disk == 20480
    assert spec.kubernetes.cri == "containerd" and spec.oscar.enabled
    assert spec.elasticity.idle_time == 300
    [group] = spec.worker_groups
    assert (group.name, group.min, group.max, group.initial_count, group.arch) == ("wn", 0, 3, 0, "amd64")
    assert spec.edge_groups == ()


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("8 GiB", 8192),
        ("8GiB", 8192),
        ("512 MiB", 512),
        ("512M", 512),
        ("1.5 GiB", 1536),
        (2, 2048),
        ("1T", 1048576),
    ],
)
def test_sizes_parse_to_mib(text, mib):
    assert parse_size_mib(text) == mib


def test_flags_override_the_file(tmp_path):
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text("name: lab\ncloud: egi\nworker_groups: [{name: wn, max: 2}]\n")
    spec = load_spec(
        spec_file, ["oscar.enabled=false", "worker_groups[0].labels.tier=1"], cloud="aws", workers=4
    )
    assert spec.cloud == "aws" and spec.name == "lab"
    assert spec.oscar.enabled is False
    assert spec.worker_groups[0].labels == {"tier": "1"}
    # --workers above max raises max with it, so the flag alone always works
    assert spec.worker_groups[0].initial == 4 and spec.worker_groups[0].max == 4


def test_set_creates_missing_sections_and_groups():
    data = apply_overrides({}, ["elasticity.idle_time=60", "worker_groups[0].max=7"])
    assert data == {"elasticity": {"idle_time": 60}, "worker_groups": [{"max": 7}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"worker_groups": [{"name": "a"}, {"name": "b", "min": 2, "max": 1}]},
            "worker_groups[1].max: must be >= min (2)",
        ),
        (
            {"worker_groups": [{"min": 1, "max": 3, "initial": 5}]},
            "worker_groups[0].initial: must be between min (1) and max (3)",
        ),
        ({"worker_groups": [{"mx": 3}]}, "worker_groups[0].mx: unknown field; did you mean 'max'?"),
        ({"fornt": {}}, "fornt: unknown field; did you mean 'front'?"),
        ({"front": {"cpus": 0}}, "front.cpus: Input should be greater than or equal to 1"),
        (
            {"front": {"memory": "lots"}},
            "front.memory: 'lots' is not a size; write e.g. '8 GiB' or '512 MiB'",
        ),
        (
            {"name": "Bad_Name"},
            "name: must be lowercase letters, digits and '-', 1-40 chars, starting with a letter",
        ),
        ({"worker_groups": [{"arch": "riscv"}]}, "worker_groups[0].arch: Input should be 'amd64' or 'arm64'"),
        (
            {"worker_groups": [{"name": "x"}], "edge_groups": [{"name": "x"}]},
            "edge_groups[0].name: 'x' is already used by worker_groups[0].name",
        ),
        (
            {"edge_groups": [{"hosts": [{"address": "h1"}]}]},
            "edge_groups[0].hosts[0].mac: is required when power is 'wol'",
        ),
        (
            {"edge_groups": [{"power": "always-on", "min": 2, "hosts": [{"address": "h1"}]}]},
            "edge_groups[0].min: must be <= the number of hosts (1)",
        ),
        (
            {"edge_groups": [{"power": "always-on", "hosts": [{"address": "h", "mac": "zz"}]}]},
            "edge_groups[0].hosts[0].mac: String should match pattern",
        ),
        ({"kubernetes": {"cert_manager": True}}, "kubernetes: cert_manager needs public_dns_name"),
        ({"kubernetes": {"version": "latest"}}, "kubernetes.version: String should match pattern"),
        (
            {"oscar": {"minio_password": "short"}},
            "oscar.minio_password: String should have at least 8 characters",
        ),
        (
            {"elasticity": {"utilization_threshold": 1.5}},
            "elasticity.utilization_threshold: Input should be less than or equal to 1",
        ),
        ({"elasticity": {"expanders": ["cheapest"]}}, "elasticity.expanders[0]: Input should be"),
        (
            {"worker_groups": [{"taints": [{"key": "k", "effect": "Never"}]}]},
            "worker_groups[0].taints[0].effect: Input should be",
        ),
    ],
)
def test_validation_errors_name_the_field_and_the_fix(data, message):
    with pytest.raises(SpecError) as caught:
        validate_spec(data)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_errors_from_a_file_name_the_file(tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("worker_groups:\n  - {min: 3, max: 1}\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: worker_groups\[0\]\.max: must be >= min \(3\)"):
        load_spec(spec_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [("a: [1, 2\n", r"bad\.yaml:\d+: .*fix the YAML syntax"), ("- 1\n- 2\n", "must be a YAML mapping")],
)
def test_unreadable_spec_files(tmp_path, content, message):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(content)
    with pytest.raises(UserError, match=message):
        load_spec(spec_file)


def test_missing_spec_file(tmp_path):
    with pytest.raises(UserError, match="no such spec file"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize("assignment", ["novalue", "=3", "worker_groups[9].max=1", "a..b=1"])
def test_bad_set_assignments(assignment):
    with pytest.raises(UserError, match=r"^--set "):
        load_spec(None, [assignment])


def test_secrets_come_from_the_spec_then_the_store_then_the_generator():
    spec = validate_spec({"oscar": {"oscar_password": "from-the-spec"}})
    made = iter(["generated-1", "generated-2"])
    filled, stored = fill_secrets(spec, {"oscar.admin_password": "from-the-store"}, lambda: next(made))
    assert filled.oscar.oscar_password == "from-the-spec"
    assert filled.oscar.admin_password == "from-the-store"
    assert {filled.kubernetes.admin_token, filled.oscar.minio_password} == {"generated-1", "generated-2"}
    assert stored == secret_values(filled)
    # the input spec is untouched (frozen models, copies only)
    assert spec.oscar.admin_password is None


def test_clouds_lists_each_cloud_once_front_first():
    spec = load_spec(EXAMPLES / "multi-cloud.yaml")
    assert spec.clouds() == ("egi", "campus-openstack", "aws")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_validates(example):
    assert isinstance(load_spec(EXAMPLES / example), ClusterSpec)


def test_the_spec_reference_documents_every_field():
    from pydantic import BaseModel

    reference = (EXAMPLES.parent / "docs" / "spec.md").read_text()
    models = [ClusterSpec]
    seen = set()
    while models:
        current = models.pop()
        for name, field in current.model_fields.items():
            assert f".{name}`" in reference or f"`{name}`" in reference, (
                f"docs/spec.md misses {name}: regenerate it"
            )
            for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
                nested = getattr(candidate, "__args__", (candidate,))
                for inner in nested:
                    if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in seen:
                        seen.add(inner)
                        models.append(inner)
