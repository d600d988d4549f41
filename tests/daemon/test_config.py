"""Building a daemon from its sources: the settings embedded in a deployment's TOSCA, edge boards, power
managers per group, refreshed IM credentials, and the TOSCA count rewrite of the IM power manager."""

from __future__ import annotations

import secrets

import pytest

from deployer.adapters.im.auth import AuthEntry
from deployer.adapters.power.edge import EdgePowerManager
from deployer.adapters.power.im import IMPowerManager, node_name_for
from deployer.core.elasticity.from_spec import groups_from_spec, settings_from_spec
from deployer.core.spec import fill_secrets, validate_spec
from deployer.daemon.config import (
    RefreshingIMClient,
    daemon_plan,
    edge_boards,
    power_managers,
    spec_from_tosca,
)
from deployer.errors import UserError
from deployer.lifecycle.prepare import render_prepared

SPEC = {
    "name": "c1",
    "cloud": "local",
    "elasticity": {"idle_time": 120, "batch_idle": 2, "batch_max": 20, "resync_period": 15},
    "worker_groups": [
        {"name": "wn", "max": 5, "cpus": 4, "memory": "8 GiB", "cost_per_hour": 0.2},
        {"name": "wn-gpu", "max": 2, "gpus": 1, "initial": 1, "priority": 5},
    ],
    "edge_groups": [
        {
            "name": "pis",
            "wol_broadcast": "192.0.2.255",
            "hosts": [
                {"address": "pi-a.lan", "mac": "aa:bb:cc:dd:ee:01"},
                {
                    "address": "192.0.2.7",
                    "name": "pi-b",
                    "mac": "aa:bb:cc:dd:ee:02",
                    "user": "ops",
                    "port": 2222,
                },
            ],
        }
    ],
}


def _rendered() -> tuple[object, str]:
    spec, _ = fill_secrets(validate_spec(SPEC), {}, lambda *_, **__: secrets.token_urlsafe(12))
    return spec, render_prepared(spec).tosca_redacted


def test_the_deployment_tosca_carries_everything_the_daemon_needs() -> None:
    spec, tosca = _rendered()
    recovered = spec_from_tosca(tosca, "c1")
    assert groups_from_spec(recovered) == groups_from_spec(spec)
    assert settings_from_spec(recovered) == settings_from_spec(spec)
    plan = daemon_plan(recovered, "c1")
    assert (plan.loop.batch_idle, plan.loop.batch_max, plan.loop.resync_period) == (2, 20, 15)


def test_a_tosca_without_elasticity_asks_for_a_spec() -> None:
    with pytest.raises(UserError, match="--spec"):
        spec_from_tosca("tosca_definitions_version: tosca_simple_yaml_1_0\n", "c1")


def test_edge_boards_and_power_managers_per_group() -> None:
    spec = validate_spec(SPEC)
    boards = edge_boards(spec, ssh_key="/keys/edge")
    assert sorted(boards) == ["pi-a.lan", "pi-b"]
    assert (boards["pi-b"].address, boards["pi-b"].ssh_user, boards["pi-b"].ssh_port) == (
        "192.0.2.7",
        "ops",
        2222,
    )
    assert boards["pi-a.lan"].wol_broadcast == "192.0.2.255" and boards["pi-a.lan"].ssh_key == "/keys/edge"
    groups = groups_from_spec(spec)
    with pytest.raises(UserError, match="--infra-id"):
        power_managers(groups, im=None, infrastructure_id=None, boards=boards)
    managers = power_managers(groups, im=lambda: None, infrastructure_id="inf-1", boards=boards)  # type: ignore[arg-type,return-value]
    assert isinstance(managers["wn"], IMPowerManager) and managers["wn"] is managers["wn-gpu"]
    assert isinstance(managers["pis"], EdgePowerManager)


def test_refreshing_client_is_rebuilt_only_when_credentials_change() -> None:
    tokens = ["token-one-abcdef"]

    def entries() -> list[AuthEntry]:
        return [AuthEntry("InfrastructureManager", None, {"token": tokens[0]})]

    factory = RefreshingIMClient("http://127.0.0.1:9", entries)
    first = factory()
    assert factory() is first
    tokens[0] = "token-two-abcdef"
    second = factory()
    assert second is not first and second.entries[0].fields["token"] == "token-two-abcdef"


def test_node_names_follow_the_hostname_pattern() -> None:
    assert node_name_for("wn-gpu", "12") == "wn-gpu-12"
