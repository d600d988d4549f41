"""`deployer oscar ...` end to end against the loopback fake OSCAR."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from deployer.adapters.state.secrets import SecretStore
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.paths import resolve_paths

STORAGE_SECRET = "minio-secret-key-never-printed"
ENV_SECRET = "env-secret-never-printed"


def _write_fdl(folder: Path, memory: str = "1Gi") -> Path:
    """Two services on one cluster id, with a storage credential and an environment secret."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "one.sh").write_text("#!/bin/sh\necho one\n")
    (folder / "two.sh").write_text("#!/bin/sh\necho two\n")
    fdl = {
        "functions": {
            "oscar": [
                {
                    "lab": {
                        "name": "one",
                        "image": "ghcr.io/grycap/cowsay",
                        "script": "one.sh",
                        "cpu": 0.5,
                        "memory": memory,
                        "environment": {"Variables": {"MODE": "fast"}, "Secrets": {"API_KEY": ENV_SECRET}},
                        "output": [{"storage_provider": "minio.store", "path": "bucket/out"}],
                    }
                },
                {"lab": {"name": "two", "image": "ghcr.io/grycap/cowsay", "script": "two.sh"}},
            ]
        },
        "storage_providers": {
            "minio": {
                "store": {
                    "endpoint": "https://minio.example",
                    "access_key": "minio",
                    "secret_key": STORAGE_SECRET,
                }
            }
        },
    }
    path = folder / "services.yaml"
    path.write_text(yaml.safe_dump(fdl))
    return path


def _assert_no_secret(result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def test_apply_twice_creates_then_updates_and_never_duplicates(oscar_cli, oscar_fake, tmp_path):
    fdl = _write_fdl(tmp_path)
    first = oscar_cli.json("apply", str(fdl), "-vv")
    assert first["applied"] == [
        {"name": "one", "action": "created", "warning": None},
        {"name": "two", "action": "created", "warning": None},
    ]
    posted = json.loads(oscar_fake.calls("POST", "/system/services")[0].body)
    assert posted["script"] == "#!/bin/sh\necho one\n"  # the content, not the path
    assert posted["cpu"] == "0.5" and posted["cluster_id"] == "lab"
    assert posted["environment"] == {"variables": {"MODE": "fast"}, "secrets": {"API_KEY": ENV_SECRET}}
    assert posted["storage_providers"]["minio"]["store"]["secret_key"] == STORAGE_SECRET
    token = oscar_fake.services["one"]["token"]

    second = oscar_cli.json("apply", str(fdl))
    assert [a["action"] for a in second["applied"]] == ["updated", "updated"]
    assert sorted(oscar_fake.services) == ["one", "two"]
    assert len(oscar_fake.calls("POST", "/system/services")) == 2  # only the first apply created
    assert len(oscar_fake.calls("PUT", "/system/services")) == 2

    changed = _write_fdl(tmp_path, memory="3Gi")
    oscar_cli("apply", str(changed))
    assert oscar_fake.services["one"]["memory"] == "3Gi"
    assert oscar_fake.services["one"]["token"] == token  # an update keeps the service's token

    listed = oscar_cli.json("list")
    assert [s["name"] for s in listed] == ["one", "two"]
    assert listed[0] == {
        "name": "one",
        "image": "ghcr.io/grycap/cowsay",
        "cpu": "0.5",
        "memory": "3Gi",
        "cluster_id": "lab",
        "input": [],
        "output": ["minio.store:bucket/out"],
    }
    table = oscar_cli("list", "-vv")
    for result in (table, oscar_cli("apply", str(fdl), "-vv")):
        _assert_no_secret(result, oscar_fake.password, STORAGE_SECRET, ENV_SECRET, token)
    assert "one" in table.stdout and "two" in table.stdout


def test_run_job_logs_and_remove(oscar_cli, oscar_fake, tmp_path):
    oscar_cli("apply", str(_write_fdl(tmp_path)))
    token = oscar_fake.services["one"]["token"]
    source = tmp_path / "in.txt"
    source.write_bytes("héllo".encode())

    out = tmp_path / "out.bin"
    ran = oscar_cli("run", "one", "--input", str(source), "--output", str(out))
    assert out.read_bytes() == "processed:héllo".encode()  # sent as base64, the answer decoded
    assert oscar_cli("run", "one", "--input", str(source)).stdout == "processed:héllo"
    _assert_no_secret(ran, token, oscar_fake.password)

    submitted = oscar_cli.json("job", "one", "--input", str(source))
    assert submitted["job"] in oscar_fake.jobs["one"]
    jobs = oscar_cli.json("logs", "one")
    assert [j["name"] for j in jobs] == [submitted["job"]] and jobs[0]["status"] == "Succeeded"
    log_text = oscar_cli("logs", "one", submitted["job"]).stdout
    assert "processed" in log_text
    assert oscar_cli.json("logs", "one", submitted["job"])["logs"] == log_text
    assert "Succeeded" in oscar_cli("logs", "one").stdout  # the table (names are cut at 80 columns)

    removed = oscar_cli("remove", "two")
    assert "two: removed" in removed.stderr and "two" not in oscar_fake.services
    again = oscar_cli("remove", "two")
    assert "nothing to remove" in again.stderr


def test_binary_output_needs_an_output_file(oscar_cli, oscar_fake, tmp_path):
    oscar_cli("apply", str(_write_fdl(tmp_path)))
    source = tmp_path / "in.bin"
    source.write_bytes(b"\xff\xfe\x00")
    result = oscar_cli("run", "one", "--input", str(source), code=1)
    assert "bytes of binary output; pass --output FILE" in result.stderr


@pytest.mark.parametrize(
    ("fault", "code", "message"),
    [
        ({"status": 401}, 3, "refused the credentials (401)"),
        ({"status": 503, "text": "upstream down"}, 3, "OSCAR server error 503: upstream down"),
        ({"html": True}, 3, "non-JSON body (text/html"),
    ],
)
def test_a_misbehaving_oscar_is_a_one_line_error_with_exit_code(oscar_cli, oscar_fake, fault, code, message):
    oscar_fake.fail(**fault)
    result = oscar_cli("list", code=code)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    _assert_no_secret(result, oscar_fake.password)


def test_how_to_reach_oscar_is_checked(oscar_cli, oscar_fake, monkeypatch, tmp_path):
    assert (
        "say which OSCAR: --cluster NAME, or --endpoint URL" in oscar_cli("list", code=1, target=False).stderr
    )
    no_creds = oscar_cli("list", "--endpoint", oscar_fake.url, code=1, target=False)
    assert "--endpoint needs credentials" in no_creds.stderr
    monkeypatch.delenv("OSCAR_PASSWORD")
    unset = oscar_cli("list", code=1)
    assert "--password-env OSCAR_PASSWORD: that environment variable is not set" in unset.stderr
    with_token = oscar_cli(
        "list", "--endpoint", oscar_fake.url, "--token", oscar_fake.oidc_token, target=False
    )
    assert oscar_fake.requests[-1].authorization == f"Bearer {oscar_fake.oidc_token}"
    _assert_no_secret(with_token, oscar_fake.oidc_token)
    bad = tmp_path / "bad.yaml"
    bad.write_text("functions:\n  oscar:\n    - lab: {name: x, image: i, script: s.sh, cpu: lots}\n")
    invalid = oscar_cli("validate", str(bad), code=1, target=False)
    assert f"{bad}: functions.oscar[0].lab.cpu: 'lots' is not a CPU amount" in invalid.stderr
    assert oscar_fake.calls("POST") == []


def _record(name: str, *, simulated: bool) -> DeploymentRecord:
    return DeploymentRecord(
        name=name,
        cloud="egi",
        im_url="http://127.0.0.1:1",
        infrastructure_id="inf-1",
        deployment_tag=f"dpl-{name}",
        spec_hash="h",
        tosca_redacted="",
        status="configured",
        simulated=simulated,
    )


def test_cluster_uses_the_password_deployer_keeps(oscar_cli, oscar_fake, tmp_path):
    from deployer.lifecycle.oscar import cluster_target

    paths = resolve_paths()
    DeploymentStore(paths.state_db).add(_record("lab", simulated=False))
    SecretStore(paths).save("lab", {"oscar.oscar_password": oscar_fake.password})
    by_cluster = ["--cluster", "lab", "--endpoint", oscar_fake.url]
    oscar_cli("apply", str(_write_fdl(tmp_path)), *by_cluster, target=False)
    assert sorted(oscar_fake.services) == ["one", "two"]
    assert (
        oscar_fake.requests[-1].authorization
        == "Basic " + base64.b64encode(f"oscar:{oscar_fake.password}".encode()).decode()
    )
    # Without --endpoint the API base is the deployment's oscar_endpoint output.
    target = cluster_target(paths, "lab", outputs=lambda: {"oscar_endpoint": oscar_fake.url + "/"})
    with target.client() as client:
        assert [s["name"] for s in client.list_services()] == ["one", "two"]
    unknown = oscar_cli("list", "--cluster", "nope", code=1, target=False)
    assert "nope" in unknown.stderr


def test_cluster_without_a_kept_password_or_with_simulated_vms_is_refused(oscar_cli, oscar_fake):
    from deployer.errors import UserError
    from deployer.lifecycle.oscar import cluster_target

    paths = resolve_paths()
    DeploymentStore(paths.state_db).add(_record("elsewhere", simulated=False))
    result = oscar_cli("list", "--cluster", "elsewhere", "--endpoint", oscar_fake.url, code=1, target=False)
    assert "no OSCAR password is kept for cluster 'elsewhere'" in result.stderr
    DeploymentStore(paths.state_db).add(_record("sim", simulated=True))
    SecretStore(paths).save("sim", {"oscar.oscar_password": "sim-password-123"})
    with pytest.raises(
        UserError, match=r"simulated VMs: its OSCAR endpoint https://10\.0\.0\.1/ is not a real"
    ):
        cluster_target(paths, "sim", outputs=lambda: {"oscar_endpoint": "https://10.0.0.1/"})
    assert oscar_fake.requests == []
