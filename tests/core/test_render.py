"""TOSCA rendering: golden files, determinism, safe serialisation of hostile values, offline validation."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import yaml

from deployer.adapters.tosca import validate_tosca
from deployer.core.render import PUBLISHED_TYPES_URL, RenderOptions, cloud_auth_id, render_tosca, types_file
from deployer.core.spec import fill_secrets, load_spec, validate_spec
from deployer.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = ROOT / "tests" / "golden"
GOLDEN_EXAMPLES = ["oscar-elastic", "multi-cloud", "edge-hybrid", "local-demo"]


def _complete(spec):
    counter = itertools.count()
    filled, _ = fill_secrets(spec, {}, lambda: f"test-secret-{next(counter):02d}")
    return filled


def _render_example(name: str, **options) -> str:
    spec = _complete(load_spec(EXAMPLES / f"{name}.yaml"))
    local = spec.cloud == "local"
    return render_tosca(spec, RenderOptions(types="local" if local else "remote", simulated=local, **options))


def _portable(text: str) -> str:
    # The local types import is an absolute path of this checkout; golden files must not depend on it.
    return text.replace(str(types_file()), "<TYPES_FILE>")


@pytest.mark.parametrize("name", GOLDEN_EXAMPLES)
def test_rendering_matches_the_golden_file(name):
    rendered = _portable(_render_example(name, deployment_tag="golden-tag"))
    golden = GOLDEN / f"{name}.tosca.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"re-run with UPDATE_GOLDEN=1 after reviewing the diff of {golden}"


@pytest.mark.parametrize("name", GOLDEN_EXAMPLES)
def test_every_example_renders_tosca_that_tosca_parser_accepts_offline(name):
    nodes = validate_tosca(_render_example(name), source=name)
    assert "front" in nodes and "lrms_front_end" in nodes


def test_rendering_is_deterministic():
    assert _render_example("multi-cloud") == _render_example("multi-cloud")


def test_remote_profile_imports_the_published_types_and_local_the_shipped_file():
    spec = _complete(validate_spec({"name": "t"}))
    remote = yaml.safe_load(render_tosca(spec, RenderOptions(types="remote")))
    local = yaml.safe_load(render_tosca(spec, RenderOptions(types="local", simulated=True)))
    assert remote["imports"] == [{"deployer_types": PUBLISHED_TYPES_URL}]
    assert local["imports"] == [{"deployer_types": str(types_file())}]
    assert Path(local["imports"][0]["deployer_types"]).is_absolute()  # the IM has no base path


def test_simulated_front_asks_for_no_public_ip_and_carries_no_interfaces():
    doc = yaml.safe_load(_render_example("local-demo"))
    front = doc["topology_template"]["node_templates"]["front"]
    assert "network_name" not in front["capabilities"]["endpoint"]["properties"]
    # No node carries an implementation: the IM must not contextualize (and SSH to) Dummy VMs.
    assert "interfaces" not in yaml.safe_dump(doc)
    assert "implementation" not in yaml.safe_dump(doc)


def test_each_worker_group_is_its_own_scalable_pair_placed_on_its_cloud():
    doc = yaml.safe_load(_render_example("multi-cloud"))
    nodes = doc["topology_template"]["node_templates"]
    assert nodes["cpu_vm"]["capabilities"]["scalable"]["properties"] == {
        "count": 2,
        "min_instances": 0,
        "max_instances": 10,
    }
    assert nodes["gpu_vm"]["capabilities"]["host"]["properties"]["num_gpus"] == 1
    assert nodes["cpu_wn"]["requirements"] == [{"host": "cpu_vm"}]
    # workers on another cloud reach the front end through its public address
    assert nodes["gpu_wn"]["properties"]["front_end_ip"] == {"get_attribute": ["front", "public_address", 0]}
    placements = {
        next(iter(p)): p[next(iter(p))]["properties"]["cloud_id"]
        for p in doc["topology_template"]["policies"]
    }
    assert placements == {"front_on_cloud": "egi", "cpu_on_cloud": "campus_openstack", "gpu_on_cloud": "aws"}


def test_counts_and_removal_lists_override_the_spec():
    spec = _complete(validate_spec({"name": "t", "worker_groups": [{"name": "wn", "max": 5, "initial": 3}]}))
    doc = yaml.safe_load(
        render_tosca(spec, RenderOptions(counts={"wn": 1}, removal_lists={"wn": ("4", "7")}))
    )
    scalable = doc["topology_template"]["node_templates"]["wn_vm"]["capabilities"]["scalable"]["properties"]
    assert scalable["count"] == 1 and scalable["removal_list"] == ["4", "7"]


HOSTILE = [
    "quote \" and ' apostrophe",
    "two\nlines: here",
    "{{ 7 * 7 }} {% if true %}x{% endif %}",
    "key: value",
    "&anchor value",
    "*alias",
    "!!python/object:os.system",
    "- list item",
    "# not a comment",
    "tab\there and unicode ñ ☃",
    "@{}[]|>",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_come_out_as_the_same_string(value):
    spec = _complete(
        validate_spec(
            {
                "name": "t",
                "oscar": {"oscar_password": value + "-padding"},
                "front": {"image": value},
                "kubernetes": {"public_dns_name": value},
                "worker_groups": [{"labels": {"team": value}, "instance_type": value}],
            }
        )
    )
    text = render_tosca(spec, RenderOptions())
    doc = yaml.safe_load(text)
    nodes = doc["topology_template"]["node_templates"]
    assert nodes["oscar"]["properties"]["password"] == value + "-padding"
    assert nodes["front"]["capabilities"]["os"]["properties"]["image"] == value
    assert nodes["lrms_front_end"]["properties"]["public_dns_name"] == value
    assert nodes["wn_vm"]["properties"]["tags"]["team"] == value
    assert nodes["wn_vm"]["capabilities"]["host"]["properties"]["instance_type"] == value
    # No new structure appeared: the same node set and top-level keys as a benign render.
    benign = yaml.safe_load(render_tosca(_complete(validate_spec({"name": "t"})), RenderOptions()))
    assert set(nodes) == set(benign["topology_template"]["node_templates"])
    assert set(doc) == set(benign)
    assert "49" not in text  # Jinja never evaluated the value


def test_validation_reports_the_source_and_the_problem():
    bad = _render_example("local-demo").replace(
        "type: tosca.nodes.indigo.OSCAR", "type: tosca.nodes.indigo.NoSuchType"
    )
    with pytest.raises(UserError, match=r"^broken\.yaml: .*NoSuchType"):
        validate_tosca(bad, source="broken.yaml")


def test_validation_refuses_unknown_remote_imports():
    text = "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - https://example.org/types.yaml\n"
    with pytest.raises(UserError, match="remote file"):
        validate_tosca(text, source="t.yaml")


@pytest.mark.parametrize(
    ("cloud", "ident"), [("egi", "egi"), ("campus-openstack", "campus_openstack"), ("1st", "cloud_1st")]
)
def test_cloud_auth_ids_start_with_a_letter(cloud, ident):
    assert cloud_auth_id(cloud) == ident


def test_the_embedded_elasticity_config_reads_back_as_the_same_groups():
    import json

    from deployer.core.spec import ClusterSpec

    spec = _complete(load_spec(EXAMPLES / "edge-hybrid.yaml"))
    doc = yaml.safe_load(render_tosca(spec, RenderOptions()))
    config = json.loads(doc["topology_template"]["node_templates"]["elasticity"]["properties"]["config"])
    again = ClusterSpec.model_validate({**config, "name": spec.name})
    assert again.worker_groups == spec.worker_groups
    assert again.elasticity == spec.elasticity
    # the board's SSH key path stays on the operator's machine
    assert [g.model_copy(update={"ssh_key": None}) for g in spec.edge_groups] == list(again.edge_groups)
