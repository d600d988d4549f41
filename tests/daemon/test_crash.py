"""Crash safety, measured: the daemon as a real process is SIGKILLed at every step of a scale-up and of a
scale-down (real local IM, loopback Kubernetes API), restarted each time on the same state directory; the
world it leaves has no duplicate VM, no orphan VM, no node left cordoned and no running job evicted. Then
failover: two daemons with leader election, the leader killed mid-drain."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import create_im_cluster, worker_group_data, worker_vms
from tests.daemon.crash import (
    SCALE_DOWN_STEPS,
    SCALE_UP_STEPS,
    ControlPlane,
    Daemon,
    KillSwitch,
    World,
    measure,
    prepare,
    run_scenario,
    settled,
)
from tests.daemon.im_proxy import IMProxy

pytestmark = pytest.mark.im


@pytest.fixture
def world(local_im, im_user, kube_api, tmp_path: Path) -> Iterator[World]:
    im = create_im_cluster(local_im.url, im_user.entries, worker_group_data(f"c{secrets.token_hex(3)}"))
    proxy = IMProxy(local_im.url).start()
    home = tmp_path / "daemon-home"
    home.mkdir()
    try:
        yield World(im, proxy.url, im_user.auth_file, kube_api, proxy, home)
    finally:
        proxy.stop()
        im.client.destroy(im.infra_id)
        im.client.close()


def _clean(outcome) -> None:
    assert outcome.settled, outcome
    assert (
        outcome.duplicate_vms,
        outcome.orphan_vms,
        outcome.nodes_left_cordoned,
        outcome.running_jobs_evicted,
    ) == (0, 0, 0, 0), outcome


def test_killed_at_every_step_of_a_scale_up(world: World, im_user) -> None:
    outcome = run_scenario(world, "scale-up", SCALE_UP_STEPS, im_user.entries)
    assert outcome.kills == [step.name for step in SCALE_UP_STEPS]
    _clean(outcome)
    assert len(worker_vms(world.im)) == 1
    adds = [r for r in world.proxy.requests if r.method == "POST" and r.status == 200]
    assert len(adds) == 1  # one VM asked for, once: the restarts adopted it


def test_killed_at_every_step_of_a_scale_down(world: World, im_user) -> None:
    outcome = run_scenario(world, "scale-down", SCALE_DOWN_STEPS, im_user.entries)
    assert outcome.kills == [step.name for step in SCALE_DOWN_STEPS]
    _clean(outcome)
    assert world.api.get("Pod", "default", "job-0")["status"]["phase"] == "Running"
    assert world.api.get("Pod", "default", "web-0") is None  # the underused node's pod was evicted


def test_leaders_killed_mid_scale_up_and_mid_drain_leave_no_cordoned_node_and_no_second_vm(
    world: World, im_user
) -> None:
    prepare(world, "scale-down", im_user.entries)
    world.api.add_pod("work-0", cpu="1850m", memory="256Mi", unschedulable=True)  # fits no node: a new VM
    plane = ControlPlane(world.api, world.im).start()
    switch = KillSwitch(world.proxy, world.api)
    other_home = world.home.parent / "other-home"
    other_home.mkdir()
    other = World(world.im, world.im_url, world.auth_file, world.api, world.proxy, other_home)
    steps = {step.name: step for step in SCALE_DOWN_STEPS + SCALE_UP_STEPS}
    before = {node["metadata"]["name"] for node in world.api.list("Node")}
    replicas = [Daemon(world.argv(leader=True), world.home), Daemon(other.argv(leader=True), other_home)]
    try:
        # Replica A leads and scales up; it dies once the IM made the VM, before it could record it.
        switch.arm(steps["after-im-add"], replicas[0])
        replicas[0].start()
        assert switch.fired.wait(60), "replica A never scaled up"
        # Replica B (its own, empty, database) takes the expired Lease, adopts the VM, drains the underused
        # node, and dies right after its first eviction.
        switch.arm(steps["eviction-made"], replicas[1])
        replicas[1].start()
        assert switch.fired.wait(60), "replica B never drained"
        (cordoned,) = [
            n["metadata"]["name"] for n in world.api.list("Node") if n["spec"].get("unschedulable")
        ]
        # Replica A comes back: only the cluster (the Node's mark, the IM's VMs) says what is under way.
        replicas[0] = Daemon(world.argv(leader=True), world.home).start()
        deadline = time.monotonic() + 60
        while not (settled(world, "scale-up") and len(world.api.list("Node")) == 2):
            assert time.monotonic() < deadline, f"never settled: {world.api.list('Node')}"
            time.sleep(0.2)
        after = {node["metadata"]["name"] for node in world.api.list("Node")}
        outcome = measure(world, "scale-down", before - after)
    finally:
        for replica in replicas:
            replica.stop()
        plane.stop()
        world.proxy.hook = None
        world.api.hook = None
    assert cordoned not in after  # its drain was resumed and finished
    assert (outcome.nodes_left_cordoned, outcome.running_jobs_evicted, outcome.orphan_vms) == (0, 0, 0)
    assert len(worker_vms(world.im)) == 2  # the job's VM and the one for work-0: no second scale-up
    adds = [r for r in world.proxy.requests if r.method == "POST" and r.status == 200]
    assert len(adds) == 2  # the test's (two VMs) and replica A's scale-up: no second scale-up
    removals = [r for r in world.proxy.requests if r.method == "DELETE" and "/vms/" in r.path]
    assert len(removals) == 1  # the removal that finished the drain
