"""examples/mask-detection/: the spec renders and validates offline, its FDL validates and applies to the fake,
and ``create``'s hook applies the spec's FDL files (waiting for an OSCAR that is still starting)."""

from __future__ import annotations

import json
import os

import pytest

from deployer.adapters.oscar.client import Credentials, OscarClient
from deployer.adapters.state.secrets import SecretStore
from deployer.adapters.tosca import validate_tosca
from deployer.core.render import RenderOptions, render_tosca
from deployer.core.spec import load_spec, validate_spec
from deployer.errors import SpecError, TransientError
from deployer.lifecycle.oscar import apply_after_create, load_spec_fdls, wait_until_ready
from deployer.paths import resolve_paths
from tests.core.test_render import GOLDEN, ROOT, _complete, _portable

EXAMPLE = ROOT / "examples" / "mask-detection"
SPEC = EXAMPLE / "cluster.yaml"
FDL = EXAMPLE / "mask-detection.fdl.yaml"


def _rendered() -> str:
    spec = _complete(load_spec(SPEC))
    return render_tosca(spec, RenderOptions(types="remote", deployment_tag="golden-tag"))


def test_the_example_spec_matches_its_golden_file_and_validates_offline():
    rendered = _portable(_rendered())
    golden = GOLDEN / "mask-detection.tosca.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"re-run with UPDATE_GOLDEN=1 after reviewing the diff of {golden}"
    nodes = validate_tosca(rendered, source=str(SPEC))
    assert {"front", "lrms_front_end", "oscar", "egi_vm"} <= set(nodes)
    spec = load_spec(SPEC)
    assert [g.name for g in spec.edge_groups] == ["pi"] and spec.edge_groups[0].arch == "arm64"
    assert spec.worker_groups[0].min == 0 and spec.worker_groups[0].max > 0 and spec.elasticity.enabled


def test_the_example_fdl_validates_with_its_pipeline(oscar_cli):
    result = json.loads(oscar_cli("validate", str(FDL), "--json", target=False).stdout)
    assert [s["name"] for s in result["services"]] == ["anon-and-split", "mask-detector"]
    (loaded,) = load_spec_fdls(load_spec(SPEC), SPEC)  # the spec's fdl_files, relative to the spec
    first, second = loaded.payloads()
    # input -> anon-and-split -> intermediate -> mask-detector -> result, all on the cluster's MinIO
    assert first["input"][0]["path"] == "mask-detection/input"
    assert first["output"][0]["path"] == second["input"][0]["path"] == "mask-detection/intermediate"
    assert second["output"][0]["path"] == "mask-detection/result"
    assert first["script"] == (EXAMPLE / "blurry-faces.sh").read_text()
    assert first["cpu"] == "1.0" and first["cluster_id"] == "mask-detection"


def test_the_example_fdl_applies_to_oscar_twice_without_duplicates(oscar_cli, oscar_fake):
    assert [a["action"] for a in oscar_cli.json("apply", str(FDL))["applied"]] == ["created", "created"]
    assert [a["action"] for a in oscar_cli.json("apply", str(FDL))["applied"]] == ["updated", "updated"]
    assert sorted(oscar_fake.services) == ["anon-and-split", "mask-detector"]


def test_create_hook_applies_the_spec_fdls_and_skips_simulated_clusters(oscar_fake, deployer_home):
    spec = load_spec(SPEC)
    loaded = load_spec_fdls(spec, SPEC)
    SecretStore(resolve_paths()).save("mask-detection", {"oscar.oscar_password": oscar_fake.password})
    notes: list[str] = []
    outputs = {"oscar_endpoint": oscar_fake.url + "/"}
    skipped = apply_after_create(
        resolve_paths(), "mask-detection", outputs, loaded, simulated=True, notify=notes.append
    )
    assert skipped == [] and oscar_fake.requests == []  # never dial a simulated cluster's address
    assert "validated but not applied" in notes[0]
    applied = apply_after_create(
        resolve_paths(), "mask-detection", outputs, loaded, simulated=False, notify=notes.append
    )
    assert [(a.name, a.action) for a in applied] == [
        ("anon-and-split", "created"),
        ("mask-detector", "created"),
    ]
    oscar_fake.fail(status=401)
    with pytest.raises(
        Exception, match=r"apply later with `deployer oscar apply FDL --cluster mask-detection`"
    ):
        apply_after_create(
            resolve_paths(), "mask-detection", outputs, loaded, simulated=False, notify=notes.append
        )


def test_an_oscar_still_starting_is_waited_for_within_a_bound(oscar_fake):
    oscar_fake.fail(2, status=503)
    client = OscarClient(oscar_fake.url, Credentials(user="oscar", password=oscar_fake.password))
    with client:
        wait_until_ready(client, timeout=30, poll=0.05)
        assert len(oscar_fake.calls("GET", "/system/services")) == 3
        oscar_fake.fail(1000, status=502)
        with pytest.raises(TransientError, match="502"):
            wait_until_ready(client, timeout=0.3, poll=0.05)
        oscar_fake.faults.clear()


def test_spec_fdl_files_need_oscar_and_are_checked_before_create(tmp_path):
    with pytest.raises(SpecError, match=r"oscar.fdl_files: needs oscar.enabled: true"):
        validate_spec({"oscar": {"enabled": False, "fdl_files": ["x.yaml"]}})
    spec_file = tmp_path / "cluster.yaml"
    spec_file.write_text("oscar: {fdl_files: [missing.yaml]}\n")
    with pytest.raises(Exception, match=r"missing.yaml: no such FDL file"):
        load_spec_fdls(load_spec(spec_file), spec_file)
