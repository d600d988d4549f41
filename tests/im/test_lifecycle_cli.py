"""The real CLI through a whole life cycle against the real IM: create, outputs, scale, list, destroy."""

from __future__ import annotations

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.paths import resolve_paths
from tests.im.conftest import eventually
from tests.im.templates import new_tag, small_tosca

pytestmark = pytest.mark.im


def wn_vms(cli, name):
    return [vm["vm_id"] for vm in cli.json("status", name)["vms"] if vm["node"] == "wn_vm"]


def test_create_scale_destroy(cli, im_user, local_im):
    created = cli.json(*cli.create_args("life", "--workers", "1", "--timeout", "60"))
    assert created["state"] == "configured"
    assert created["simulated"] is True
    assert created["outputs"]["front_private_ip"] == "10.0.0.1"
    assert created["outputs"]["kubernetes_api_endpoint"] == "https://10.0.0.1:6443"
    inf_id = created["infrastructure_id"]

    record = DeploymentStore(resolve_paths().state_db).get("life")
    assert (record.infrastructure_id, record.status, record.cloud) == (inf_id, "configured", "local")
    assert record.deployment_tag.startswith("dpl-")
    assert "<redacted>" in record.tosca_redacted

    status = cli.json("status", "life")
    assert status["state"] == "configured"
    assert sorted(vm["node"] for vm in status["vms"]) == ["front", "wn_vm"]
    assert cli.json("outputs", "life")["outputs"] == created["outputs"]

    up = cli.json("scale", "life", "--group", "wn", "--count", "3", "--timeout", "60")
    assert len(up["added"]) == 2 and up["removed"] == []
    members = wn_vms(cli, "life")
    assert len(members) == 3
    # Go back to one VM, keeping the middle one: the two we name are the ones removed.
    first, middle, last = members
    down = cli.json(
        "scale", "life", "--group", "wn", "--count", "1", "--remove", f"{first},{last}", "--timeout", "60"
    )
    assert sorted(down["removed"]) == sorted([first, last])
    assert wn_vms(cli, "life") == [middle]
    assert "Contextualization disabled" in cli("logs", "life").stdout
    unknown = cli("scale", "life", "--group", "gpu", "--count", "1", code=1)
    assert "no worker group 'gpu'" in unknown.stderr and "wn_vm" in unknown.stderr
    stranger = cli("scale", "life", "--group", "wn", "--count", "0", "--remove", "999", code=1)
    assert "999" in stranger.stderr and "not in the group" in stranger.stderr
    assert cli.json("scale", "life", "--group", "wn", "--count", "1")["added"] == []
    reconfigured = cli("reconfigure", "life", "--timeout", "60")
    assert "reconfiguration started" in reconfigured.stderr and "life: configured" in reconfigured.stderr

    cli("destroy", "life", "--yes")
    assert DeploymentStore(resolve_paths().state_db).all() == []
    eventually(lambda: cli.json("list"), [])
    with IMClient(local_im.url, im_user.entries) as client:
        eventually(client.list_ids, [])
    again = cli("destroy", "life", "--yes")
    assert "nothing to destroy" in again.stderr


def test_list_flags_drift_both_ways(cli, im_user, local_im):
    # Wait for configured: a destroy that races the IM's own async create can be undone by the create
    # thread's final save (seen under load), which is not what this test is about.
    cli(*cli.create_args("drifty"))
    with IMClient(local_im.url, im_user.entries) as client:
        inf_id = DeploymentStore(resolve_paths().state_db).get("drifty").infrastructure_id
        tag = new_tag()
        stranger = client.create(small_tosca(tag))
        try:
            rows = {row["infrastructure_id"]: row for row in cli.json("list")}
            assert rows[inf_id]["name"] == "drifty" and rows[inf_id]["drift"] is None
            assert rows[stranger]["drift"] == "unknown to deployer"
            client.destroy(inf_id)  # behind deployer's back
            eventually(
                lambda: {r["infrastructure_id"]: r["drift"] for r in cli.json("list")}[inf_id],
                "gone in IM",
                within=45.0,
            )
        finally:
            client.destroy(stranger)
    cli("destroy", "drifty", "--yes")  # already gone in the IM: still succeeds and forgets it
    eventually(lambda: cli.json("list"), [])


def test_dry_run_creates_nothing(cli, im_user, local_im):
    result = cli.json(*cli.create_args("dry", "--dry-run"))
    assert "tosca.nodes.indigo.Compute" in result["tosca"]
    assert result["estimate"]
    assert DeploymentStore(resolve_paths().state_db).all() == []
    with IMClient(local_im.url, im_user.entries) as client:
        assert client.list_ids() == []


def test_destroy_keep_record_and_confirmation(cli):
    cli(*cli.create_args("kept", "--no-wait"))
    refused = cli("destroy", "kept", code=1)  # no TTY and no --yes
    assert "--yes" in refused.stderr
    cli("destroy", "kept", "--yes", "--keep-record")
    assert DeploymentStore(resolve_paths().state_db).get("kept").status == "destroyed"
    assert cli.json("list")[0]["drift"] is None
    cli("destroy", "kept", "--yes")
    eventually(lambda: cli.json("list"), [])
