"""Auth entries built from cloud profiles, read back by the IM's own header parser (from the IM package)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from deployer.adapters.clouds import profiles
from deployer.adapters.clouds.profiles import CloudProfile
from deployer.adapters.im.auth import AuthEntry, auth_header
from deployer.core.render import cloud_auth_id
from deployer.errors import NotFoundError, UserError
from deployer.paths import resolve_paths
from tests.clouds.conftest import make_jwt

TOKEN = make_jwt({"iss": "https://aai.egi.eu/auth/realms/egi", "sub": "u1", "exp": 4102444800})
TRICKY_PASSWORDS = [
    "p;ss",
    "it's",
    'say "hi"',
    "both ' and \" ;",
    "ends with backslash\\",
    "ünïcødé€",
    "k=v",
    "a = b",
    "#not-a-comment",
    "'quoted'",
]


@pytest.fixture
def paths(deployer_home: Path):
    return resolve_paths({"DEPLOYER_HOME": str(deployer_home)})


def _add(paths, name: str, kind: str, **settings: str) -> CloudProfile:
    profile = CloudProfile(name, kind, settings)
    profiles.add_profile(paths, profile)
    return profile


def test_egi_site_entry_and_token_im_line(paths, im_parse):
    _add(paths, "egi-cesga", "egi", site="CESGA", vo="vo.access.egi.eu")
    url, entries = profiles.auth_entries_for_cloud(paths, "egi-cesga", env={"EGI_ACCESS_TOKEN": TOKEN})
    assert url == profiles.EGI_IM_URL
    assert im_parse(auth_header(entries)) == [
        {"id": "egi_cesga", "type": "EGI", "host": "CESGA", "vo": "vo.access.egi.eu", "token": TOKEN},
        {"type": "InfrastructureManager", "token": TOKEN},
    ]


def test_egi_keystone_entry_is_openstack_oidc_and_im_sees_its_scope(paths, im_parse):
    from IM.auth import Authentication
    from IM.CloudInfo import CloudInfo

    _add(
        paths,
        "egi-ifca",
        "egi",
        site="IFCA-LCG2",
        vo="vo.access.egi.eu",
        project_id="999f045cb1ff4684a15ebb338af69460",
        keystone_url="https://api.cloud.ifca.es:5000/v3",
        im_url="https://im.example.org/im",
    )
    url, entries = profiles.auth_entries_for_cloud(paths, "egi-ifca", token=TOKEN, env={})
    assert url == "https://im.example.org/im"
    parsed = im_parse(auth_header(entries))
    assert parsed[0] == {
        "id": "egi_ifca",
        "type": "OpenStack",
        "host": "https://api.cloud.ifca.es:5000/v3",
        "username": "egi.eu",
        "tenant": "openid",
        "auth_version": "3.x_oidc_access_token",
        "password": TOKEN,
        "vo": "vo.access.egi.eu",
        "domain": "999f045cb1ff4684a15ebb338af69460",
    }
    (cloud,) = CloudInfo.get_cloud_list(Authentication(parsed))
    assert cloud.id == "egi_ifca" and cloud.server == "api.cloud.ifca.es" and cloud.port == 5000
    assert cloud.extra == {
        "auth_version": "3.x_oidc_access_token",
        "username": "egi.eu",
        "domain": "999f045cb1ff4684a15ebb338af69460",
    }


@pytest.mark.parametrize("password", TRICKY_PASSWORDS)
def test_openstack_password_from_os_env_round_trips_through_the_im_parser(
    paths, im_parse, tmp_path, password
):
    _add(paths, "mystack", "openstack", im_username="admin", im_password_env="IM_PW")
    env = {
        "HOME": str(tmp_path),  # no stray clouds.yaml from the real home
        "OS_AUTH_URL": "https://keystone.example.org:5000/v3",
        "OS_USERNAME": "alice",
        "OS_PASSWORD": password,
        "OS_PROJECT_NAME": "demo",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "RegionOne",
        "IM_PW": password + "-im",
    }
    url, entries = profiles.auth_entries_for_cloud(paths, "mystack", im_url="https://im.example.org", env=env)
    assert url == "https://im.example.org"
    cloud, im_line = im_parse(auth_header(entries))
    assert cloud == {
        "id": "mystack",
        "type": "OpenStack",
        "host": "https://keystone.example.org:5000/v3",
        "username": "alice",
        "password": password,
        "tenant": "demo",
        "auth_version": "3.x_password",
        "domain": "Default",
        "service_region": "RegionOne",
    }
    assert im_line == {"type": "InfrastructureManager", "username": "admin", "password": password + "-im"}


def test_password_the_im_cannot_read_is_a_clear_error(paths, tmp_path):
    _add(paths, "mystack", "openstack", im_username="admin", im_password_env="IM_PW")
    env = {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": "https://k:5000/v3",
        "OS_USERNAME": "a",
        "OS_PASSWORD": "file(/etc/shadow)",
        "OS_PROJECT_NAME": "p",
        "IM_PW": "secret-im",
    }
    with pytest.raises(UserError, match=r"cloud profile 'mystack': .*file\(\.\.\.\)"):
        profiles.auth_entries_for_cloud(paths, "mystack", im_url="https://im", env=env)


def test_openstack_application_credential_from_clouds_yaml(paths, im_parse, tmp_path):
    config_dir = tmp_path / ".config" / "openstack"
    config_dir.mkdir(parents=True)
    (config_dir / "clouds.yaml").write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "site-a": {
                        "auth_type": "v3applicationcredential",
                        "auth": {
                            "auth_url": "https://site-a.example.org:5000",
                            "application_credential_id": "21dced0fd20347869b93710d2b98aae0",
                            "application_credential_secret": "s3cr'et;value",
                        },
                        "region_name": "RegionTwo",
                    }
                }
            }
        )
    )
    _add(paths, "site-a", "openstack", os_cloud="site-a", im_username="me", im_password_env="IM_PW")
    _, entries = profiles.auth_entries_for_cloud(
        paths, "site-a", im_url="https://im", env={"HOME": str(tmp_path), "IM_PW": "im-password"}
    )
    cloud = im_parse(auth_header(entries))[0]
    assert cloud["username"] == "21dced0fd20347869b93710d2b98aae0"
    assert cloud["password"] == "s3cr'et;value"
    assert cloud["auth_version"] == "3.x_appcred"
    assert cloud["host"] == "https://site-a.example.org:5000"
    assert cloud["service_region"] == "RegionTwo"
    assert cloud["tenant"]  # the IM's OpenStack connector requires one


def test_aws_keys_from_env_and_from_shared_credentials(paths, im_parse, tmp_path):
    _add(paths, "aws-eu", "aws", region="eu-west-1", im_username="me", im_password_env="IM_PW")
    env = {
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJal/rXU;tn'FEMI",
        "IM_PW": "im-password",
    }
    _, entries = profiles.auth_entries_for_cloud(paths, "aws-eu", im_url="https://im", env=env)
    assert im_parse(auth_header(entries))[0] == {
        "id": "aws_eu",
        "type": "EC2",
        "username": "AKIAEXAMPLE",
        "password": "wJal/rXU;tn'FEMI",
    }

    aws_dir = tmp_path / ".aws"
    aws_dir.mkdir()
    (aws_dir / "credentials").write_text(
        "[research]\naws_access_key_id = AKIAFILE\n"
        'aws_secret_access_key = file"secret\naws_session_token = sess-tok\n'
    )
    (aws_dir / "config").write_text("[profile research]\nregion = us-east-2\n")
    _add(paths, "aws-file", "aws", aws_profile="research", im_username="me", im_password_env="IM_PW")
    _, entries = profiles.auth_entries_for_cloud(paths, "aws-file", im_url="https://im", env=env)
    assert im_parse(auth_header(entries))[0] == {
        "id": "aws_file",
        "type": "EC2",
        "username": "AKIAFILE",
        "password": 'file"secret',
        "token": "sess-tok",
    }
    creds = profiles.aws_credentials(profiles.get_profile(paths, "aws-file"), env)
    assert creds["region"] == "us-east-2"


def test_missing_credentials_name_the_fix(paths, tmp_path):
    _add(paths, "egi-a", "egi", site="CESGA", vo="vo.access.egi.eu")
    with pytest.raises(UserError, match="EGI_ACCESS_TOKEN"):
        profiles.auth_entries_for_cloud(paths, "egi-a", env={})
    _add(paths, "egi-b", "egi", site="CESGA", vo="vo.access.egi.eu", token_env="MY_TOKEN")
    with pytest.raises(UserError, match="MY_TOKEN, which is not set"):
        profiles.auth_entries_for_cloud(paths, "egi-b", env={"EGI_ACCESS_TOKEN": TOKEN})
    _add(paths, "aws-a", "aws", im_username="me", im_password_env="IM_PW")
    with pytest.raises(UserError, match="AWS_ACCESS_KEY_ID"):
        profiles.auth_entries_for_cloud(paths, "aws-a", env={"HOME": str(tmp_path), "IM_PW": "x" * 8})
    with pytest.raises(UserError, match="export IM_PW"):
        profiles.auth_entries_for_cloud(
            paths,
            "aws-a",
            env={"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
        )
    with pytest.raises(NotFoundError, match="egi-a"):
        profiles.auth_entries_for_cloud(paths, "nope", env={})


def test_multi_cloud_auth_has_one_entry_per_cloud_with_distinct_ids(paths, im_parse, tmp_path):
    _add(
        paths,
        "front-os",
        "openstack",
        im_username="me",
        im_password_env="IM_PW",
        im_url="https://im.example.org",
    )
    _add(paths, "egi-a", "egi", site="CESGA", vo="vo.access.egi.eu")
    _add(paths, "egi-b", "egi", site="IFCA-LCG2", vo="vo.access.egi.eu")
    _add(paths, "aws-b", "aws")
    env = {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": "https://k:5000/v3",
        "OS_USERNAME": "a",
        "OS_PASSWORD": "pw-os",
        "OS_PROJECT_NAME": "p",
        "IM_PW": "im-password",
        "EGI_ACCESS_TOKEN": TOKEN,
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
    }
    names = ["front-os", "egi-a", "aws-b", "egi-b", "egi-a"]
    url, entries = profiles.auth_entries_for_clouds(paths, names, env=env)
    assert url == "https://im.example.org"
    parsed = im_parse(auth_header(entries))
    ids = [item.get("id") for item in parsed if item["type"] != "InfrastructureManager"]
    assert ids == [cloud_auth_id(n) for n in ["front-os", "egi-a", "aws-b", "egi-b"]]
    assert len(set(ids)) == 4 and all(i[0].isalpha() for i in ids)
    assert [item["type"] for item in parsed].count("InfrastructureManager") == 1
    # The front end's IM credentials win over the egi token.
    assert parsed[-1] == {"type": "InfrastructureManager", "username": "me", "password": "im-password"}


def test_local_profile_is_dummy_and_takes_the_callers_im_line(paths, im_parse):
    im_line = AuthEntry("InfrastructureManager", None, {"username": "local", "password": "local-pass"})
    url, entries = profiles.auth_entries_for_cloud(paths, "local", im_entry=im_line, env={})
    assert url is None  # the embedded local IM
    assert im_parse(auth_header(entries)) == [
        {"id": "local", "type": "Dummy"},
        {"type": "InfrastructureManager", "username": "local", "password": "local-pass"},
    ]
    with pytest.raises(UserError, match="im_entry"):
        profiles.auth_entries_for_cloud(paths, "local", env={})


def test_profile_file_is_private_and_show_masks_stored_secrets(paths):
    _add(paths, "egi-a", "egi", site="CESGA", vo="vo.access.egi.eu", token=TOKEN, token_env="MY_TOKEN")
    assert stat.S_IMODE(paths.clouds_file.stat().st_mode) == 0o600
    shown = profiles.get_profile(paths, "egi-a").masked()
    assert shown["token"] == "***" and shown["token_env"] == "MY_TOKEN"
    assert TOKEN not in str(shown)
    with pytest.raises(UserError, match="--replace"):
        _add(paths, "egi-a", "egi", site="X", vo="Y")
    profiles.remove_profile(paths, "egi-a")
    assert profiles.load_profiles(paths) == {}
    with pytest.raises(NotFoundError):
        profiles.remove_profile(paths, "egi-a")


@pytest.mark.parametrize(
    ("name", "kind", "settings", "message"),
    [
        ("Bad_Name", "egi", {"site": "S", "vo": "V"}, "lowercase"),
        ("1cloud", "local", {}, "starting with a letter"),
        ("ok", "gce", {}, "unknown kind"),
        ("ok", "egi", {"site": "S"}, "needs vo"),
        ("ok", "aws", {"site": "S"}, "unknown field"),
    ],
)
def test_invalid_profiles_are_refused(name, kind, settings, message):
    with pytest.raises(UserError, match=message):
        CloudProfile(name, kind, settings)


def test_image_urls_per_kind(tmp_path):
    env = {"HOME": str(tmp_path), "OS_AUTH_URL": "https://keystone.example.org:5000/v3"}
    assert (
        profiles.image_url(
            CloudProfile("e", "egi", {"site": "CESGA", "vo": "vo.access.egi.eu"}), "egi.ubuntu.22.04"
        )
        == "egi://CESGA/egi.ubuntu.22.04?vo.access.egi.eu"
    )
    assert (
        profiles.image_url(CloudProfile("a", "aws", {"region": "eu-west-1"}), "ami-0abc")
        == "aws://eu-west-1/ami-0abc"
    )
    assert profiles.image_url(CloudProfile("o", "openstack", {}), "1234-uuid", env=env) == (
        "ost://keystone.example.org/1234-uuid"
    )
    assert profiles.image_url(CloudProfile("a", "aws", {}), "ost://x/y") == "ost://x/y"
    with pytest.raises(UserError, match="region"):
        profiles.image_url(CloudProfile("a", "aws", {}), "ami-1", env={})


def test_cloud_auth_entries_carry_a_refreshed_token_for_long_running_callers(paths, tmp_path, caplog):
    import time

    token_file = tmp_path / "token"
    expiring = make_jwt({"exp": time.time() + 100, "n": 1})  # inside the 5-minute refresh margin
    token_file.write_text(expiring)
    _add(paths, "egi-a", "egi", site="CESGA", vo="vo.access.egi.eu", token_file=str(token_file))
    _add(paths, "egi-b", "egi", site="IFCA", vo="vo.access.egi.eu", im_url="https://other-im.example.org")
    with caplog.at_level("WARNING", logger="deployer.clouds.profiles"):
        auth = profiles.build_cloud_auth(paths, ["egi-a", "egi-b"], env={"EGI_ACCESS_TOKEN": TOKEN})
    assert auth.im_url == profiles.EGI_IM_URL
    assert "using the front end's IM" in caplog.text
    first = auth.entries()
    assert first[0].fields["token"] == expiring and first[-1].fields == {"token": expiring}
    assert first[1].fields["token"] == TOKEN  # each profile keeps its own token source
    fresh = make_jwt({"exp": time.time() + 3600, "n": 2})
    token_file.write_text(fresh)
    second = auth.entries()
    assert second[0].fields["token"] == fresh and second[-1].fields == {"token": fresh}


def test_a_token_flag_authenticates_at_the_im_when_the_profile_names_no_im_user(paths, im_parse, tmp_path):
    _add(paths, "mystack", "openstack", im_url="https://im.example.org")
    env = {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": "https://k:5000/v3",
        "OS_USERNAME": "a",
        "OS_PASSWORD": "pw-os",
        "OS_PROJECT_NAME": "p",
    }
    with pytest.raises(UserError, match="names no IM credentials"):
        profiles.auth_entries_for_cloud(paths, "mystack", env=env)
    _, entries = profiles.auth_entries_for_cloud(paths, "mystack", token=TOKEN, env=env)
    assert im_parse(auth_header(entries))[-1] == {"type": "InfrastructureManager", "token": TOKEN}
