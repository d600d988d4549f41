"""Discovery through openstacksdk against a loopback Keystone v3 + Nova + Glance, and flavor choice."""

from __future__ import annotations

import socket

import pytest

from deployer.adapters.clouds import discovery, profiles
from deployer.adapters.clouds.profiles import CloudProfile
from deployer.core.placement import Flavor, choose_flavor
from deployer.paths import resolve_paths


@pytest.fixture
def paths(deployer_home):
    return resolve_paths({"DEPLOYER_HOME": str(deployer_home)})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _os_env(fake, tmp_path, password=None) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": fake.auth_url,
        "OS_USERNAME": fake.cloud.username,
        "OS_PASSWORD": fake.cloud.password if password is None else password,
        "OS_PROJECT_NAME": fake.cloud.project_name,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "IM_PW": "im-password",
    }


def test_openstack_check_lists_flavors_and_active_images(paths, openstack_fake, tmp_path):
    profiles.add_profile(
        paths, CloudProfile("lab", "openstack", {"im_username": "me", "im_password_env": "IM_PW"})
    )
    im_url = f"http://127.0.0.1:{_closed_port()}"
    report = discovery.check_cloud(paths, "lab", im_url=im_url, env=_os_env(openstack_fake, tmp_path))
    assert [f.name for f in report.flavors] == ["m1.small", "m1.medium", "m1.large", "g1.a100x2", "v1.vgpu"]
    assert {f.name: f.gpus for f in report.flavors}["g1.a100x2"] == 2
    assert {f.name: f.gpus for f in report.flavors}["v1.vgpu"] == 1
    assert [(i.name, i.url) for i in report.images] == [
        ("Ubuntu 22.04", "ost://127.0.0.1/11111111-aaaa"),
        ("Rocky 9", "ost://127.0.0.1/22222222-bbbb"),
    ]
    # The IM is down: reported, not raised, and the OpenStack part still answered.
    assert not report.ok and len(report.errors) == 1 and report.errors[0].startswith("IM:")
    methods = [r for r in openstack_fake.cloud.requests if r[0] == "POST"]
    assert [p for _, p, _ in methods] == ["/identity/v3/auth/tokens"]


def test_wrong_password_is_reported_as_refused_credentials(paths, openstack_fake, tmp_path):
    profiles.add_profile(
        paths, CloudProfile("lab", "openstack", {"im_username": "me", "im_password_env": "IM_PW"})
    )
    env = _os_env(openstack_fake, tmp_path, password="wrong-password")
    report = discovery.check_cloud(paths, "lab", im_url=f"http://127.0.0.1:{_closed_port()}", env=env)
    assert report.flavors is None
    assert any("refused the credentials (401)" in e for e in report.errors)


def test_egi_site_with_keystone_url_uses_the_oidc_federation(paths, openstack_fake, tmp_path):
    cloud = openstack_fake.cloud
    profiles.add_profile(
        paths,
        CloudProfile(
            "egi-lab",
            "egi",
            {
                "site": "LAB",
                "vo": "vo.access.egi.eu",
                "project_id": cloud.project_id,
                "keystone_url": openstack_fake.auth_url,
                "im_url": f"http://127.0.0.1:{_closed_port()}",
            },
        ),
    )
    report = discovery.check_cloud(paths, "egi-lab", token=cloud.oidc_token, env={"HOME": str(tmp_path)})
    assert report.token_source == "--token"
    assert len(report.flavors) == 5 and len(report.images) == 2
    federation = [h for _, p, h in cloud.requests if p.endswith("/protocols/openid/auth")]
    assert federation and federation[0]["Authorization"] == f"Bearer {cloud.oidc_token}"


def test_cheapest_flavor_that_fits_with_reasons(openstack_fake):
    conn = discovery.openstack_connection(
        "password",
        {
            "auth_url": openstack_fake.auth_url,
            "username": openstack_fake.cloud.username,
            "password": openstack_fake.cloud.password,
            "project_name": "demo",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
    )
    flavors = discovery.openstack_flavors(conn)
    choice = choose_flavor(flavors, cpus=2, memory_mib=4096)
    assert choice.flavor.name == "m1.medium"
    assert "m1.small: too small (1 vCPU < 2, 2048 MiB < 4096 MiB)" in choice.reasons
    assert choice.reasons[-1].startswith("chose m1.medium")
    assert choose_flavor(flavors, cpus=2, memory_mib=4096, gpus=1).flavor.name == "v1.vgpu"
    assert choose_flavor(flavors, cpus=2, memory_mib=4096, gpus=2).flavor.name == "g1.a100x2"
    none = choose_flavor(flavors, cpus=64, memory_mib=4096)
    assert none.flavor is None and "no flavor offers 64 vCPU" in none.reasons[-1]


def test_known_prices_beat_size():
    flavors = [
        Flavor("big-cheap", 8, 16384, cost=0.05),
        Flavor("small-dear", 2, 4096, cost=0.20),
        Flavor("x", 2, 4096),
    ]
    choice = choose_flavor(flavors, cpus=2, memory_mib=4096)
    assert choice.flavor.name == "big-cheap"
    assert "small-dear: fits but costs more than big-cheap" in choice.reasons


class _PublicIMClient:
    """Only the IM client's public API that ``check_im`` may use; records what was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def version(self) -> str:
        self.calls.append(("version", ""))
        return "1.2.3"

    def cloud_quotas(self, cloud_id: str) -> dict:
        self.calls.append(("quotas", cloud_id))
        return {"cores": {"used": 1, "limit": 10}}

    def cloud_images(self, cloud_id: str) -> list[dict]:
        self.calls.append(("images", cloud_id))
        return [{"uri": "dummy://img", "name": "img"}]


def test_check_im_uses_the_public_client_api_only():
    report = discovery.CheckReport(cloud="lab", kind="openstack", auth_id="lab")
    client = _PublicIMClient()
    discovery.check_im(report, client)
    assert report.ok, report.errors
    assert client.calls == [("version", ""), ("quotas", "lab"), ("images", "lab")]
    assert (report.im_version, report.quotas["cores"], report.im_images[0]["uri"]) == (
        "1.2.3",
        {"used": 1, "limit": 10},
        "dummy://img",
    )
