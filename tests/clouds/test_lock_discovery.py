"""Lock files pin what discovery chose on an OpenStack cloud (loopback Keystone + Nova + Glance)."""

from __future__ import annotations

import pytest

from deployer.adapters.clouds import profiles
from deployer.adapters.clouds.profiles import CloudProfile
from deployer.core.lock import lock_diff
from deployer.core.spec import validate_spec
from deployer.lifecycle.lockfile import build_lock, resolve_pins
from deployer.paths import resolve_paths


@pytest.fixture
def os_cloud(deployer_home, openstack_fake, tmp_path, monkeypatch):
    for key, value in {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": openstack_fake.auth_url,
        "OS_USERNAME": openstack_fake.cloud.username,
        "OS_PASSWORD": openstack_fake.cloud.password,
        "OS_PROJECT_NAME": openstack_fake.cloud.project_name,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }.items():
        monkeypatch.setenv(key, value)
    paths = resolve_paths()
    profiles.add_profile(paths, CloudProfile("lab", "openstack", {"image": "Ubuntu 22.04"}))
    return paths


def test_the_lock_pins_the_chosen_flavors_and_image_id_and_sees_them_vanish(os_cloud, openstack_fake):
    spec = validate_spec(
        {
            "name": "lab",
            "cloud": "lab",
            "types": "local",
            "front": {"cpus": 2, "memory": "4 GiB"},
            "worker_groups": [{"name": "big", "cpus": 4, "memory": "8 GiB"}],
        }
    )
    pins = build_lock(os_cloud, spec)["pins"]
    assert pins["flavors"] == {"front": "m1.medium", "big": "m1.large"}
    assert pins["images"] == {
        "front": "ost://127.0.0.1/11111111-aaaa",
        "big": "ost://127.0.0.1/11111111-aaaa",
    }
    assert lock_diff(pins, resolve_pins(os_cloud, spec, locked=pins)) == []

    openstack_fake.cloud.flavors[:] = [f for f in openstack_fake.cloud.flavors if f["name"] != "m1.medium"]
    openstack_fake.cloud.images[:] = [i for i in openstack_fake.cloud.images if i["name"] != "Ubuntu 22.04"]
    assert lock_diff(pins, resolve_pins(os_cloud, spec, locked=pins)) == [
        "flavors.front: locked m1.medium, now m1.large",
        "images.big: locked ost://127.0.0.1/11111111-aaaa, now (no longer available)",
        "images.front: locked ost://127.0.0.1/11111111-aaaa, now (no longer available)",
    ]
