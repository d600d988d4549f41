"""The planner's groups and settings from a cluster spec."""

from __future__ import annotations

import pytest

from deployer.core.elasticity import GroupKind, Resources, Taint, groups_from_spec, settings_from_spec
from deployer.core.elasticity.from_spec import SYSTEM_RESERVED
from deployer.core.spec import validate_spec

SPEC = {
    "worker_groups": [
        {
            "name": "gpu",
            "cpus": 8,
            "memory": "32 GiB",
            "gpus": 1,
            "min": 1,
            "max": 4,
            "labels": {"pool": "gpu"},
            "taints": [{"key": "nvidia.com/gpu", "value": "present"}],
            "cost_per_hour": 1.5,
            "priority": 2,
            "boot_seconds": 240,
        },
    ],
    "edge_groups": [
        {
            "name": "pi",
            "hosts": [
                {"address": "10.1.0.5", "name": "pi-a", "mac": "aa:bb:cc:dd:ee:01"},
                {"address": "pi-b.lan", "mac": "aa:bb:cc:dd:ee:02"},
            ],
            "min": 1,
        },
        {"name": "lab", "power": "always-on", "hosts": [{"address": "lab-1"}]},
    ],
    "elasticity": {
        "idle_time": 120,
        "max_nodes": 9,
        "max_booting": 2,
        "expanders": ["least-cost", "priority"],
    },
}


def test_groups_map_every_worker_and_edge_group():
    gpu, pi, lab = groups_from_spec(validate_spec(SPEC))
    assert (gpu.name, gpu.kind, gpu.min_size, gpu.max_size) == ("gpu", GroupKind.CLOUD, 1, 4)
    assert gpu.shape == Resources(8000 - SYSTEM_RESERVED.cpu_m, 32768 - SYSTEM_RESERVED.memory_mib, 1, 110)
    assert gpu.taints == (Taint("nvidia.com/gpu", "present", "NoSchedule"),)
    assert (gpu.labels, gpu.cost_per_hour, gpu.priority, gpu.boot_seconds) == ({"pool": "gpu"}, 1.5, 2, 240)
    assert (pi.kind, pi.arch, pi.hosts, pi.max_size, pi.min_size) == (
        GroupKind.EDGE,
        "arm64",
        ("pi-a", "pi-b.lan"),
        2,
        1,
    )
    assert (pi.cost_per_hour, pi.priority) == (0.0, 10)
    assert lab.kind is GroupKind.EDGE_ALWAYS_ON


def test_ideal_nodes_without_reservation():
    (wn,) = groups_from_spec(validate_spec({}), reserved=Resources())
    assert wn.shape == Resources(2000, 4096, 0, 110)


def test_settings_follow_the_elasticity_section():
    cfg = settings_from_spec(validate_spec(SPEC))
    assert (cfg.idle_time, cfg.max_nodes_total, cfg.max_booting) == (120, 9, 2)
    assert cfg.expanders == ("least-cost", "priority")


@pytest.mark.parametrize(("section", "expected"), [({}, "demand"), ({"idle_policy": "fixed"}, "fixed")])
def test_the_idle_policy_follows_the_spec(section, expected):
    assert settings_from_spec(validate_spec({"elasticity": section})).idle_policy == expected


@pytest.mark.parametrize(("section", "expected"), [({}, "break-even"), ({"wait_for_room": "never"}, "never")])
def test_waiting_for_room_follows_the_spec(section, expected):
    assert settings_from_spec(validate_spec({"elasticity": section})).wait_for_room == expected
