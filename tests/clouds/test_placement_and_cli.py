"""Hybrid placement checks (pure) and the `deployer clouds` commands end to end (in-process CLI)."""

from __future__ import annotations

import json
import socket
import stat

from typer.testing import CliRunner

from deployer.cli.app import app
from deployer.core.placement import hybrid_findings
from deployer.core.spec import validate_spec


def _spec(front_public: bool = True, edge: bool = False, **clouds: str):
    data = {
        "cloud": clouds.get("front", "site-a"),
        "front": {"public_ip": front_public},
        "worker_groups": [
            {"name": "wa", "cloud": clouds.get("wa")},
            {"name": "wb", "cloud": clouds.get("wb")},
        ],
    }
    if edge:
        data["edge_groups"] = [{"name": "pi", "power": "always-on", "hosts": [{"address": "192.0.2.10"}]}]
    return validate_spec(data)


KINDS = {"site-a": "openstack", "site-b": "egi", "local": "local", "local-2": "local"}


def test_single_cloud_with_public_front_end_is_fine():
    assert hybrid_findings(_spec(), KINDS) == []
    assert hybrid_findings(_spec(front="local", wb="local-2"), KINDS) == []


def test_remote_groups_need_a_reachable_front_end():
    assert hybrid_findings(_spec(wb="site-b"), KINDS) == []  # public front end: reachable
    (finding,) = hybrid_findings(_spec(front_public=False, wb="site-b"), KINDS)
    assert finding.level == "warning"
    assert "wb (site-b)" in finding.message and "wa" not in finding.message.split("front end")[0]
    assert "VPN/overlay" in finding.message and "front.public_ip: true" in finding.message


def test_edge_groups_without_public_front_end_warn():
    (finding,) = hybrid_findings(_spec(front_public=False, edge=True), KINDS)
    assert finding.level == "warning" and "edge groups" in finding.message


def test_simulated_and_real_clouds_cannot_mix():
    findings = hybrid_findings(_spec(front="local", wb="site-b"), KINDS)
    assert [f.level for f in findings] == ["error"]
    assert "local" in findings[0].message and "site-b" in findings[0].message


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_clouds_add_list_show_remove(deployer_home):
    added = _invoke(
        "clouds",
        "add",
        "egi-a",
        "--kind",
        "egi",
        "--site",
        "CESGA",
        "--vo",
        "vo.access.egi.eu",
        "--oidc-agent-account",
        "egi",
        "--set",
        "client_secret=very-secret-value",
    )
    assert added.exit_code == 0, added.output
    clouds_file = deployer_home / "clouds.yaml"
    assert stat.S_IMODE(clouds_file.stat().st_mode) == 0o600

    listed = _invoke("clouds", "list", "--json")
    assert listed.exit_code == 0
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"egi-a", "local"}  # the built-in local profile is always there
    assert rows["egi-a"]["client_secret"] == "***" and rows["egi-a"]["auth_id"] == "egi_a"

    shown = _invoke("clouds", "show", "egi-a")
    assert shown.exit_code == 0 and "CESGA" in shown.stdout and "very-secret-value" not in shown.stdout

    again = _invoke("clouds", "add", "egi-a", "--kind", "egi", "--site", "X", "--vo", "Y")
    assert again.exit_code == 1 and "--replace" in again.output
    assert (
        _invoke("clouds", "add", "egi-a", "--kind", "egi", "--site", "X", "--vo", "Y", "--replace").exit_code
        == 0
    )
    assert json.loads(_invoke("clouds", "show", "egi-a", "--json").stdout)["site"] == "X"

    assert _invoke("clouds", "remove", "egi-a").exit_code == 0
    missing = _invoke("clouds", "show", "egi-a")
    assert missing.exit_code == 1 and "no cloud profile 'egi-a'" in missing.output
    bad = _invoke("clouds", "add", "x", "--kind", "aws", "--set", "nonsense=1")
    assert bad.exit_code == 1 and "unknown field" in bad.output


def test_clouds_check_openstack_json_and_verbose_flavor_choice(
    deployer_home, openstack_fake, tmp_path, monkeypatch
):
    cloud = openstack_fake.cloud
    for key, value in {
        "HOME": str(tmp_path),
        "OS_AUTH_URL": openstack_fake.auth_url,
        "OS_USERNAME": cloud.username,
        "OS_PASSWORD": cloud.password,
        "OS_PROJECT_NAME": cloud.project_name,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "IM_PW": "im-password",
    }.items():
        monkeypatch.setenv(key, value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_im = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert (
        _invoke(
            "clouds",
            "add",
            "lab",
            "--kind",
            "openstack",
            "--im-username",
            "me",
            "--im-password-env",
            "IM_PW",
            "--im-url",
            dead_im,
        ).exit_code
        == 0
    )

    result = _invoke("clouds", "check", "lab", "--json", "--cpus", "4", "--memory", "8 GiB")
    assert result.exit_code == 3  # the IM is down
    report = json.loads(result.stdout)
    assert report["flavor_choice"]["flavor"] == "m1.large"
    assert len(report["flavors"]) == 5 and len(report["images"]) == 2
    assert report["errors"] and report["errors"][0].startswith("IM:")
    assert cloud.password not in result.output

    verbose = _invoke("-v", "clouds", "check", "lab", "--gpus", "1")
    assert "m1.small: too small" in verbose.output and "chose v1.vgpu" in verbose.output
