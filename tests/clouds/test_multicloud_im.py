"""Multi-cloud against the REAL local IM: two Dummy clouds from two profiles, one group on each, and the
token-leak check over a full run (profiles, check, create, destroy, and a CLI create/scale/destroy with
``--token`` through an IM front that accepts the token) with an access token in play.

The cluster is rendered by ``deployer.core.render`` and submitted with ``IMClient`` directly (the
life-cycle create command is tested by its own suite); the auth comes from ``build_cloud_auth``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml
from typer.testing import CliRunner

from deployer.adapters.clouds import profiles
from deployer.adapters.clouds.profiles import CloudProfile
from deployer.adapters.im.auth import AuthEntry, auth_header
from deployer.adapters.im.client import IM_AUTH_TYPE, IMClient
from deployer.cli.app import app
from deployer.core.render import RenderOptions, cloud_auth_id, render_tosca
from deployer.core.spec import validate_spec
from deployer.paths import resolve_paths
from tests.clouds.conftest import make_jwt
from tests.clouds.token_proxy import TokenIMProxy

pytestmark = pytest.mark.im

SPEC = {
    "name": "hybrid",
    "cloud": "dummy-a",
    "oscar": {"enabled": False},
    "worker_groups": [
        {"name": "wa", "cloud": "dummy-a", "initial": 1, "max": 2},
        {"name": "wb", "cloud": "dummy-b", "initial": 2, "max": 3},
    ],
}


def _wait_configured(client: IMClient, inf_id: str, deadline_s: float = 60) -> str:
    deadline = time.monotonic() + deadline_s
    state = client.state(inf_id).state
    while state not in ("configured", "failed", "unconfigured") and time.monotonic() < deadline:
        time.sleep(0.3)
        state = client.state(inf_id).state
    return state


def _vm_clouds(url: str, entries, inf_id: str) -> dict[str, list[str]]:
    """System name -> cloud ids of its VMs, from the IM's own export of the infrastructure."""
    reply = requests.get(
        f"{url}/infrastructures/{inf_id}/data",
        headers={"Authorization": auth_header(entries), "Accept": "application/json"},
        timeout=10,
    )
    reply.raise_for_status()
    data = json.loads(reply.json()["data"])
    placed: dict[str, list[str]] = {}
    for raw in data["vm_list"]:
        vm = json.loads(raw) if isinstance(raw, str) else raw
        cloud = json.loads(vm["cloud"]) if isinstance(vm["cloud"], str) else vm["cloud"]
        system = vm["info"].split("system ", 1)[1].split(" ", 1)[0]
        placed.setdefault(system, []).append(cloud["id"])
    return placed


def _deploy_two_clouds(paths, local_im, im_user) -> tuple[IMClient, str, list]:
    for name in ("dummy-a", "dummy-b"):
        profiles.add_profile(paths, CloudProfile(name, "local", {"im_url": local_im.url}))
    spec = validate_spec(SPEC)
    im_line = next(e for e in im_user.entries if e.type == "InfrastructureManager")
    auth = profiles.build_cloud_auth(paths, spec.clouds(), im_entry=im_line, env={})
    entries = auth.entries()
    tosca = render_tosca(spec, RenderOptions(types="local", simulated=True))
    client = IMClient(auth.im_url, entries)
    return client, client.create(tosca), entries


def test_two_dummy_clouds_put_each_group_on_its_own_cloud(deployer_home, local_im, im_user):
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    client, inf_id, entries = _deploy_two_clouds(paths, local_im, im_user)
    try:
        assert [(e.type, e.id) for e in entries] == [
            ("Dummy", "dummy_a"),
            ("Dummy", "dummy_b"),
            ("InfrastructureManager", None),
        ]
        assert _wait_configured(client, inf_id) == "configured"
        placed = _vm_clouds(local_im.url, entries, inf_id)
        assert placed == {
            "front": [cloud_auth_id("dummy-a")],
            "wa_vm": [cloud_auth_id("dummy-a")],
            "wb_vm": [cloud_auth_id("dummy-b")] * 2,
        }
        radl = client.radl(inf_id)
        assert "deploy wa_vm 1 dummy_a" in radl and "deploy wb_vm 2 dummy_b" in radl
    finally:
        client.destroy(inf_id)
        client.close()


def test_check_reads_quotas_and_images_through_the_im(deployer_home, local_im):
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    profiles.add_profile(paths, CloudProfile("dummy-a", "local", {"im_url": local_im.url}))
    result = CliRunner().invoke(app, ["clouds", "check", "dummy-a", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["im_version"]
    assert report["quotas"]["cores"] == {"used": 1, "limit": 10}
    assert [i["uri"] for i in report["im_images"]][:1] == ["mock0://linux.for.ev.er/image1"]


def test_the_token_never_lands_on_disk_or_in_logs(deployer_home, local_im, im_user, monkeypatch, tmp_path):
    token = make_jwt(
        {"iss": "https://aai.egi.eu/auth/realms/egi", "sub": "leak-check", "exp": time.time() + 3000}
    )
    monkeypatch.setenv("EGI_ACCESS_TOKEN", token)
    runner = CliRunner()
    outputs: list[str] = []

    def run(*args: str) -> int:
        result = runner.invoke(app, ["-vv", *args])
        outputs.append(result.output + (result.stderr if result.stderr_bytes is not None else ""))
        return result.exit_code

    assert (
        run(
            "clouds",
            "add",
            "egi-x",
            "--kind",
            "egi",
            "--site",
            "CESGA",
            "--vo",
            "vo.access.egi.eu",
            "--token-env",
            "EGI_ACCESS_TOKEN",
            "--im-url",
            local_im.url,
        )
        == 0
    )
    assert (
        run(
            "clouds",
            "add",
            "egi-stored",
            "--kind",
            "egi",
            "--site",
            "IFCA",
            "--vo",
            "vo.access.egi.eu",
            "--set",
            f"token={token}",
            "--im-url",
            local_im.url,
        )
        == 0
    )
    assert run("clouds", "list", "--json") == 0
    assert run("clouds", "show", "egi-stored") == 0
    assert run("clouds", "show", "egi-stored", "--json") == 0
    # The token goes to the IM in the auth header; the IM refuses its issuer (it trusts none here): exit 3.
    assert run("clouds", "check", "egi-x", "--json") == 3
    assert run("clouds", "check", "egi-x", "--token", token) == 3

    # A full multi-cloud run next to it, with the profiles' token providers in use.
    paths = resolve_paths({"DEPLOYER_HOME": str(deployer_home)})
    client, inf_id, _ = _deploy_two_clouds(paths, local_im, im_user)
    egi_auth = profiles.build_cloud_auth(paths, ["egi-x"], env={"EGI_ACCESS_TOKEN": token})
    assert token in auth_header(egi_auth.entries())  # only the transient header carries it
    try:
        assert _wait_configured(client, inf_id) == "configured"
    finally:
        client.destroy(inf_id)
        client.close()

    # The life cycle through the CLI with --token: local-kind profiles on an IM that accepts the token.
    im_line = next(e for e in im_user.entries if e.type == IM_AUTH_TYPE)
    proxy = TokenIMProxy(local_im.url, token, im_line).start()
    try:
        for name in ("tok-a", "tok-b"):
            profiles.add_profile(paths, CloudProfile(name, "local", {"im_url": proxy.url}))
        spec_file = tmp_path / "tokened.yaml"
        spec_file.write_text(
            yaml.safe_dump(
                {
                    "name": "tokened",
                    "cloud": "tok-a",
                    "oscar": {"enabled": False},
                    # No elasticity: no sandbox cluster polling the IM with the stored credentials.
                    "elasticity": {"enabled": False},
                    "worker_groups": [{"name": "wb", "cloud": "tok-b", "initial": 1, "max": 2}],
                }
            )
        )
        assert run("create", str(spec_file), "--token", token, "--timeout", "60") == 0
        assert run("scale", "tokened", "-g", "wb", "--count", "2", "--token", token, "--timeout", "60") == 0
        assert run("status", "tokened", "--token", token) == 0
        assert run("outputs", "tokened", "--token", token) == 0
        before = len(proxy.headers_seen)
        assert run("status", "tokened") != 0  # without it: another IM user, who does not own the cluster
        tokenless = range(before, len(proxy.headers_seen))
        assert run("destroy", "tokened", "--yes", "--token", token) == 0
    finally:
        proxy.stop()
    assert [r.status for r in proxy.requests if r.method in ("POST", "DELETE")] == [200, 200, 200]
    token_line = AuthEntry(IM_AUTH_TYPE, None, {"token": token})
    assert len(tokenless) >= 1
    for index, entries in enumerate(proxy.headers_seen):
        # every request carried the token, except those of the one command run without --token
        assert (token_line in entries) == (index not in tokenless)
    assert all(
        {e.id for e in entries if e.type == "Dummy"} == {cloud_auth_id("tok-a"), cloud_auth_id("tok-b")}
        for entries in proxy.headers_seen
    )

    # The profile that stores the token literally is 0600 by design; every other file must be clean.
    leaks = []
    for path in Path(deployer_home).rglob("*"):
        if path.is_file() and token.encode() in path.read_bytes():
            leaks.append(path)
    assert leaks == [paths.clouds_file]
    assert oct(paths.clouds_file.stat().st_mode & 0o777) == "0o600"
    profiles.remove_profile(paths, "egi-stored")
    assert token.encode() not in paths.clouds_file.read_bytes()
    captured = "\n".join(outputs)
    assert "vo.access.egi.eu" in captured  # the output was captured at all
    assert token not in captured
    assert "IM quotas" in captured  # the check reached the IM with the token and reported its refusal
