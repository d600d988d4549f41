"""The daemon and the CLI on one machine never change one deployment at once: the IM power manager holds
the deployment's lock (the same one `deployer scale` and `deployer destroy` take) around every IM change."""

from __future__ import annotations

import pytest

from deployer.adapters.power.im import IMPowerManager
from deployer.adapters.state.locks import deployment_lock
from deployer.daemon.runner import _deployment_guard
from deployer.errors import Busy
from deployer.paths import resolve_paths
from tests.daemon.conftest import worker_vms

pytestmark = pytest.mark.im


def test_power_changes_wait_for_a_cli_command_holding_the_deployment(im_cluster, im_proxy, deployer_home):
    paths = resolve_paths()
    name = im_cluster.spec.name
    guard = lambda: deployment_lock(paths.locks_dir, name, command="daemon run", wait=0.5)  # noqa: E731
    power = IMPowerManager(im_cluster.client, im_cluster.infra_id, guard=guard)
    # A CLI command is changing the deployment: the daemon's add waits, then gives up without an IM call.
    with (
        deployment_lock(paths.locks_dir, name, command="scale"),
        pytest.raises(Busy, match="`deployer scale`"),
    ):
        power.power_on(im_cluster.group, 1)
    assert worker_vms(im_cluster) == [], "nothing reached the IM while the lock was held"
    (added,) = power.power_on(im_cluster.group, 1)
    assert worker_vms(im_cluster) == [added.vm_id]
    with deployment_lock(paths.locks_dir, name, command="destroy"), pytest.raises(Busy):
        power.power_off(im_cluster.group, [added.name])
    assert worker_vms(im_cluster) == [added.vm_id]
    power.power_off(im_cluster.group, [added.name])
    assert worker_vms(im_cluster) == []


def test_the_daemon_guards_with_the_deployments_own_lock(deployer_home):
    paths = resolve_paths()
    scale = deployment_lock(paths.locks_dir, "lab", command="scale")  # what `deployer scale lab` takes
    with _deployment_guard(paths, "lab")(), pytest.raises(Busy, match="`deployer daemon run`"), scale:
        pass
