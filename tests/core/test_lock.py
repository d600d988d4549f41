"""Lock files, pure parts: reading a spec back from rendered TOSCA, diffs, and applying pins."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from deployer.core.elasticity.scheduling import GROUP_LABEL
from deployer.core.lock import lock_diff, pinned_spec_data, spec_data_from_tosca
from deployer.core.render import RenderOptions, cloud_auth_id, render_tosca
from deployer.core.spec import fill_secrets, load_spec, validate_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _render(spec, *, counts=None) -> str:
    counter = itertools.count()
    filled, _ = fill_secrets(spec, {}, lambda: f"secret-{next(counter):02d}")
    local = spec.cloud == "local"
    options = RenderOptions(types="local" if local else "remote", simulated=local, counts=counts or {})
    return render_tosca(filled, options)


@pytest.mark.parametrize("name", ["oscar-elastic", "multi-cloud", "edge-hybrid", "local-demo"])
def test_a_spec_read_back_from_its_tosca_renders_the_same_tosca(name):
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    rendered = _render(spec)
    names = {cloud_auth_id(cloud): cloud for cloud in spec.clouds()}
    data = spec_data_from_tosca(yaml.safe_load(rendered), cloud_names=names, group_label=GROUP_LABEL)
    assert "secret-" not in yaml.safe_dump(data)
    assert _render(validate_spec(data)) == rendered


def test_current_counts_become_the_initial_counts():
    spec = validate_spec({"name": "grown", "worker_groups": [{"name": "wn", "min": 1, "max": 5}]})
    rendered = _render(spec, counts={"wn": 4})
    data = spec_data_from_tosca(
        yaml.safe_load(rendered), cloud_names={"local": "local"}, group_label=GROUP_LABEL
    )
    assert data["worker_groups"][0]["initial"] == 4
    assert data["elasticity"]["enabled"] is True


def test_diff_names_each_changed_pin_and_pins_are_written_into_the_spec():
    locked = {"deployer": "0.1.0", "images": {"front": "a", "wn": "b"}, "flavors": {"wn": "m1"}}
    now = {"deployer": "0.2.0", "images": {"front": "a", "wn": "c"}}
    assert lock_diff(locked, now) == [
        "deployer: locked 0.1.0, now 0.2.0",
        "flavors.wn: locked m1, now (none)",
        "images.wn: locked b, now c",
    ]
    assert lock_diff(locked, dict(locked)) == []
    pinned = pinned_spec_data({"front": {"cpus": 2}, "worker_groups": [{"name": "wn"}]}, locked)
    assert pinned["front"] == {"cpus": 2, "image": "a"}
    assert pinned["worker_groups"] == [{"name": "wn", "image": "b", "instance_type": "m1"}]
