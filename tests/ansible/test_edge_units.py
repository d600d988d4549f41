"""Fast checks of the edge use case's pieces that need no SSH: flags, IM outputs, inventory, state."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from deployer.adapters.ansible.inventory import SshTarget, build_inventory
from deployer.adapters.ansible.runner import ansible_dir, playbook_artifact_url
from deployer.adapters.state.edge import EdgeHostRecord, EdgeHostStore
from deployer.core.spec import validate_spec
from deployer.errors import UserError
from deployer.lifecycle.edge import (
    EdgeJoinOptions,
    front_from_outputs,
    validate_join_options,
    with_spec_group,
)
from deployer.logs import redact
from tests.ansible.cli import deployer


@pytest.mark.parametrize(
    ("hosts", "options", "message"),
    [
        ([], EdgeJoinOptions(), "at least one edge host"),
        (["a", "a"], EdgeJoinOptions(), "named twice"),
        (["a"], EdgeJoinOptions(group="Bad_Group"), "--group"),
        (["a", "b"], EdgeJoinOptions(macs=("b8:27:eb:00:00:01",)), "one per host"),
        (["a"], EdgeJoinOptions(macs=("b8:27:eb:00:00",)), "six hex pairs"),
        (["a"], EdgeJoinOptions(labels=("novalue",)), "--label"),
        (["a"], EdgeJoinOptions(taints=("edge=true:Sometimes",)), "NoSchedule"),
        (["a"], EdgeJoinOptions(key_file=Path("/nonexistent/key")), "no such file"),
    ],
)
def test_bad_join_flags_are_rejected_before_any_connection(hosts, options, message) -> None:
    with pytest.raises(UserError, match=message):
        validate_join_options(hosts, options)


def test_good_join_flags_pass() -> None:
    options = EdgeJoinOptions(
        group="pis", macs=("b8:27:eb:00:00:01",), labels=("site=lab",), taints=("edge:NoSchedule",)
    )
    validate_join_options(["10.231.1.11"], options)


def test_front_from_outputs_writes_the_private_key_0600_and_registers_it(tmp_path: Path) -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
    outputs = {
        "front_private_ip": "192.0.2.10",
        "front_public_ip": "198.51.100.7",
        "front_credentials": {"user": "cloudadm", "token_type": "private_key", "token": key},
    }
    front = front_from_outputs(outputs, tmp_path / "keys", "demo")
    assert (front.address, front.user) == ("198.51.100.7", "cloudadm")  # public address preferred
    assert front.key_file is not None
    assert front.key_file.read_text() == key + "\n"
    assert stat.S_IMODE(front.key_file.stat().st_mode) == 0o600
    assert key not in redact(f"log line with {key}")


def test_front_from_outputs_with_password_and_without_ip(tmp_path: Path) -> None:
    outputs = {
        "front_private_ip": "192.0.2.10",
        "front_credentials": {"user": "ubuntu", "token_type": "password", "token": "pw-123456"},
    }
    front = front_from_outputs(outputs, tmp_path, "demo")
    assert (front.address, front.password, front.key_file) == ("192.0.2.10", "pw-123456", None)
    assert "pw-123456" not in repr(front)
    with pytest.raises(UserError, match="no front-end IP"):
        front_from_outputs({"front_credentials": {}}, tmp_path, "demo")


def test_inventory_has_front_and_edge_groups() -> None:
    front = SshTarget("front", "192.0.2.10", user="cloudadm", key_file=Path("/k/front"))
    board = SshTarget("pi1", "192.0.2.21", user="pi", host_vars={"edge_node_name": "pi1"})
    inventory = build_inventory(front, [board])
    children = inventory["all"]["children"]
    assert children["front"]["hosts"]["front"] == {
        "ansible_host": "192.0.2.10",
        "ansible_user": "cloudadm",
        "ansible_ssh_private_key_file": "/k/front",
    }
    assert children["edge"]["hosts"]["pi1"]["edge_node_name"] == "pi1"
    assert yaml.safe_load(yaml.safe_dump(inventory)) == inventory


def test_edge_store_records_refreshes_and_forgets(tmp_path: Path) -> None:
    store = EdgeHostStore(tmp_path / "state.db")
    store.record_joined(EdgeHostRecord("demo", "h1", "pi1", "pis", "pi", mac="b8:27:eb:00:00:01"), now=10.0)
    store.record_joined(EdgeHostRecord("demo", "h2", "pi2", "pis", "pi"), now=11.0)
    store.record_joined(EdgeHostRecord("other", "h1", "x", "g", "pi"), now=12.0)
    # A re-join changes the group but keeps the MAC it was not given again.
    store.record_joined(EdgeHostRecord("demo", "h1", "pi1", "gpu", "pi"), now=13.0)
    rows = store.list("demo")
    assert [(r.host, r.node_group, r.mac) for r in rows] == [
        ("h1", "gpu", "b8:27:eb:00:00:01"),
        ("h2", "pis", None),
    ]
    assert store.remove("demo", "h1") is True
    assert store.remove("demo", "h1") is False
    assert [r.host for r in store.list("demo")] == ["h2"]
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o600


def test_playbook_artifact_url_for_tosca_interfaces() -> None:
    assert playbook_artifact_url("edge_join", "https://mirror.example/deployer/ansible/") == (
        "https://mirror.example/deployer/ansible/edge_join.yml"
    )
    local = playbook_artifact_url("elastic_daemon.yml")
    assert local == (ansible_dir() / "elastic_daemon.yml").as_uri()
    with pytest.raises(UserError, match="no playbook"):
        playbook_artifact_url("missing")


def test_local_dummy_clusters_never_yield_a_front_end_to_dial(tmp_path: Path) -> None:
    from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
    from deployer.lifecycle.edge import deployment_front
    from deployer.paths import Paths

    paths = Paths(config_dir=tmp_path, state_dir=tmp_path)
    DeploymentStore(paths.state_db).add(
        DeploymentRecord("demo", "local", "http://127.0.0.1:8800", "inf-1", "tag-1", "h", "", "configured")
    )
    asked: list[str] = []

    def read_outputs(cloud: str, im_url: str, inf_id: str) -> dict:
        asked.append(inf_id)
        return {"front_private_ip": "10.0.0.1"}

    with pytest.raises(UserError, match="pass --front"):
        deployment_front(paths, "demo", read_outputs)
    assert asked == []


def test_edge_remove_of_an_unknown_host_fails_before_any_connection(tmp_path: Path) -> None:
    done = deployer(tmp_path, "edge", "remove", "demo", "127.0.0.2", "--front", "127.0.0.1")
    assert done.returncode == 1
    assert "127.0.0.2 is not a joined edge host of 'demo'" in done.stderr
    assert not (tmp_path / "logs").exists()  # no playbook ran


EDGE_SPEC = {
    "edge_groups": [
        {"name": "pis", "power": "always-on", "labels": {"site": "lab", "tier": "edge"}},
        {
            "name": "jetsons",
            "power": "always-on",
            "arch": "arm64",
            "taints": [
                {"key": "gpu", "effect": "NoSchedule"},
                {"key": "zone", "value": "a", "effect": "NoExecute"},
            ],
        },
    ]
}


def test_the_spec_edge_group_gives_arch_labels_and_taints_and_flags_add_to_them() -> None:
    spec = validate_spec(EDGE_SPEC)
    pis = with_spec_group(EdgeJoinOptions(group="pis", labels=("tier=core", "rack=2")), spec)
    assert (pis.arch, pis.labels, pis.taints) == ("arm64", ("site=lab", "tier=core", "rack=2"), ())
    jetsons = with_spec_group(
        EdgeJoinOptions(group="jetsons", taints=("gpu:NoSchedule", "x=y:NoSchedule")), spec
    )
    assert jetsons.taints == ("gpu:NoSchedule", "zone=a:NoExecute", "x=y:NoSchedule")
    validate_join_options(["a"], jetsons)  # what the spec gives passes the flag checks


def test_a_group_missing_from_the_spec_is_named_and_a_spec_without_edge_groups_changes_nothing() -> None:
    with pytest.raises(UserError, match="--group 'edge': the spec's edge_groups are pis, jetsons"):
        with_spec_group(EdgeJoinOptions(), validate_spec(EDGE_SPEC))
    options = EdgeJoinOptions(labels=("a=b",))
    assert with_spec_group(options, validate_spec({})) is options
    assert with_spec_group(options, None) is options


def test_edge_add_reads_the_group_from_spec_before_any_connection(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yml"
    spec.write_text(yaml.safe_dump(EDGE_SPEC))
    done = deployer(
        tmp_path / "home", "edge", "add", "demo", "192.0.2.1", "--spec", str(spec), "--group", "nope"
    )
    assert done.returncode != 0
    assert "--group 'nope': the spec's edge_groups are pis, jetsons" in done.stderr
