"""`create` with a spec that lists FDL files, and `deployer oscar --cluster NAME`, through the real local IM."""

from __future__ import annotations

import pytest

from deployer.adapters.state.secrets import SecretStore
from deployer.cli.app import app
from deployer.paths import resolve_paths
from tests.oscar.test_cli import _write_fdl

pytestmark = pytest.mark.im


def test_create_checks_the_spec_fdls_and_oscar_commands_find_the_cluster(
    oscar_cli, oscar_fake, local_im, im_user, tmp_path
):
    fdl = _write_fdl(tmp_path / "services")
    spec = tmp_path / "cluster.yaml"
    spec.write_text("elasticity: {enabled: false}\noscar: {fdl_files: [services/services.yaml]}\n")
    im = ["--im-url", local_im.url, "--auth-file", str(im_user.auth_file)]

    broken = tmp_path / "broken.yaml"
    broken.write_text("oscar: {fdl_files: [services/missing.yaml]}\n")
    refused = oscar_cli.runner.invoke(app, ["create", str(broken), "--cloud", "local", "--name", "bad", *im])
    assert refused.exit_code == 1 and "missing.yaml: no such FDL file" in refused.stderr  # before any VM

    created = oscar_cli.runner.invoke(
        app, ["create", str(spec), "--cloud", "local", "--name", "lab", "--timeout", "120", *im]
    )
    assert created.exit_code == 0, created.stderr
    assert "simulated VMs run no OSCAR" in created.stderr and "validated but not applied" in created.stderr
    assert oscar_fake.requests == []
    try:
        # The endpoint comes from the deployment's IM output, and a simulated VM's address is never dialled.
        simulated = oscar_cli("list", "--cluster", "lab", code=1, target=False)
        assert "its OSCAR endpoint https://10.0.0.1/ is not a real machine" in simulated.stderr
        # The password is the one deployer generated for the cluster at create (the fake now expects it).
        oscar_fake.password = SecretStore(resolve_paths()).load("lab")["oscar.oscar_password"]
        applied = oscar_cli.json("apply", str(fdl), "--cluster", "lab", "--endpoint", oscar_fake.url)
        assert [a["action"] for a in applied["applied"]] == ["created", "created"]
        assert sorted(oscar_fake.services) == ["one", "two"]
    finally:
        oscar_cli.runner.invoke(app, ["destroy", "lab", "--yes", *im[2:]])
