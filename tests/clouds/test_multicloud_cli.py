"""Multi-cloud clusters through the REAL CLI and the real local IM: placement checks before submitting,
every cloud's auth entry on every later command (scale, destroy), and local-kind profiles that work
without flags (the embedded IM's user as their IM line).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deployer.adapters.clouds import profiles
from deployer.adapters.clouds.profiles import CloudProfile
from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.cli.app import app
from deployer.core.render import cloud_auth_id
from deployer.lifecycle.credentials import endpoint_for_record
from deployer.lifecycle.credentials import local_im as embedded_im
from deployer.paths import resolve_paths
from tests.clouds.test_multicloud_im import _vm_clouds
from tests.im.conftest import eventually

pytestmark = pytest.mark.im


def _cli(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, (
        f"exit {result.exit_code}\nstdout:{result.stdout}\nstderr:{result.stderr}"
    )
    return result


def _spec_file(tmp_path: Path, front: str, groups: dict[str, str], *, public_ip: bool = True) -> Path:
    spec = {
        "name": "hybrid",
        "cloud": front,
        "front": {"public_ip": public_ip},
        "oscar": {"enabled": False},
        "worker_groups": [
            {"name": group, "cloud": cloud, "initial": 1, "max": 3} for group, cloud in groups.items()
        ],
    }
    path = tmp_path / "hybrid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _scale_destroy_on_second_cloud(paths) -> None:
    """Scale the group on dummy-b and destroy: each command needs every cloud's auth entry."""
    up = json.loads(
        _cli("scale", "hybrid", "--group", "wb", "--count", "2", "--timeout", "60", "--json").stdout
    )
    assert len(up["added"]) == 1
    record = DeploymentStore(paths.state_db).get("hybrid")
    endpoint = endpoint_for_record(paths, record)
    assert {e.id for e in endpoint.entries if e.type == "Dummy"} >= {cloud_auth_id("dummy-b")}
    placed = _vm_clouds(endpoint.im_url, endpoint.entries, record.infrastructure_id)
    assert placed["wb_vm"] == [cloud_auth_id("dummy-b")] * 2
    _cli("destroy", "hybrid", "--yes")
    assert DeploymentStore(paths.state_db).all() == []
    with IMClient(endpoint.im_url, endpoint.entries) as client:
        eventually(client.list_ids, [])


def test_two_local_profiles_without_flags_create_scale_destroy(deployer_home, local_im, tmp_path):
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    for name in ("dummy-a", "dummy-b"):
        profiles.add_profile(paths, CloudProfile(name, "local", {"im_url": local_im.url}))
    spec = _spec_file(tmp_path, "dummy-a", {"wa": "dummy-a", "wb": "dummy-b"}, public_ip=False)
    created = _cli("create", str(spec), "--timeout", "60", "--json")
    assert json.loads(created.stdout)["state"] == "configured"
    # The placement warning (remote group, private front end) is printed, and create went on.
    assert "wb (dummy-b) run on another cloud than the front end" in created.stderr
    record = DeploymentStore(paths.state_db).get("hybrid")
    assert (record.cloud, record.clouds, record.im_url) == ("dummy-a", "dummy-a,dummy-b", local_im.url)
    _scale_destroy_on_second_cloud(paths)


def test_builtin_local_front_end_with_a_group_on_a_profile(deployer_home, local_im, tmp_path):
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    profiles.add_profile(paths, CloudProfile("dummy-b", "local", {"im_url": local_im.url}))
    spec = _spec_file(tmp_path, "local", {"wn": "local", "wb": "dummy-b"})
    created = _cli("create", str(spec), "--im-url", local_im.url, "--timeout", "60", "--json")
    assert json.loads(created.stdout)["state"] == "configured"
    assert embedded_im(paths).status() is None  # --im-url given: the embedded IM was never started
    _scale_destroy_on_second_cloud(paths)


def test_simulated_and_real_clouds_stop_create_before_anything_is_sent(deployer_home, tmp_path):
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    profiles.add_profile(paths, CloudProfile("site-x", "egi", {"site": "CESGA", "vo": "vo.access.egi.eu"}))
    spec = _spec_file(tmp_path, "local", {"wn": "local", "wx": "site-x"})

    refused = _cli("create", str(spec), code=1)
    (line,) = refused.stderr.strip().splitlines()
    assert "simulated (kind local)" in line and "site-x" in line
    assert DeploymentStore(paths.state_db).all() == []
    assert embedded_im(paths).status() is None  # not even the local IM was started for it

    rendered = _cli("render", str(spec))  # a preview: the same finding is only a warning
    assert "simulated (kind local)" in rendered.stderr
    assert "tosca_definitions_version" in rendered.stdout
