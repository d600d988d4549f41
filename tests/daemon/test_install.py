"""`deployer daemon install`: the elastic_daemon role on a front end, from a deployment record made on the real
local IM. The front end is a network-namespace sshd host given with --front; a local-cloud deployment without
--front contacts nothing (its simulated front end is 10.0.0.1) and points at `daemon install-hint`."""

from __future__ import annotations

import json
import stat
import tempfile
import time
from pathlib import Path
from secrets import token_urlsafe

import pytest

from deployer.adapters.im.auth import AuthEntry, load_auth_file, write_auth_file
from deployer.adapters.im.client import IM_AUTH_TYPE
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.core.elasticity.from_spec import groups_from_spec
from deployer.core.spec import ClusterSpec, fill_secrets, validate_spec
from deployer.daemon.config import read_daemon_file, spec_from_config
from deployer.daemon.credentials import ACCESS_TOKEN_PLACEHOLDER, TokenSource
from deployer.lifecycle.daemon_install import install_after_create, install_daemon
from deployer.lifecycle.prepare import render_prepared
from deployer.logs import MASK
from deployer.paths import resolve_paths
from tests.ansible.cli import deployer
from tests.clouds.conftest import make_jwt
from tests.daemon.conftest import IMCluster
from tests.fixtures.im_server import IMUser, RunningIM
from tests.fixtures.netns import HostFactory


def _record(
    name: str, spec: ClusterSpec, im_url: str, infra_id: str | None, auth_file: Path | None = None
) -> None:
    """The deployment as `deployer create` records it: the redacted TOSCA embeds the elasticity config."""
    prepared = render_prepared(spec, deployment_tag=f"tag-{name}")
    DeploymentStore(resolve_paths().state_db).add(
        DeploymentRecord(
            name=name,
            cloud="local",
            im_url=im_url,
            infrastructure_id=infra_id,
            deployment_tag=f"tag-{name}",
            spec_hash=prepared.spec_hash,
            tosca_redacted=prepared.tosca_redacted,
            status="configured" if infra_id else "submitting",
            auth_file=str(auth_file) if auth_file else None,
            simulated=prepared.simulated,
        )
    )


def _ansible_logs() -> list[Path]:
    return sorted(resolve_paths().logs_dir.glob("ansible-*.log"))


@pytest.mark.im
@pytest.mark.netns
@pytest.mark.slow
def test_install_on_a_front_end_writes_config_credentials_and_timer(
    deployer_home: Path,
    tmp_path: Path,
    local_im: RunningIM,
    im_user: IMUser,
    im_cluster: IMCluster,
    netns_hosts: HostFactory,
) -> None:
    (front,) = netns_hosts(1)
    _record("elastic", im_cluster.spec, local_im.url, im_cluster.infra_id, im_user.auth_file)
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text("elastic_daemon_install: false\nelastic_daemon_service_mode: none\n")
    done = deployer(
        deployer_home,
        *("daemon", "install", "elastic", "--front", front.address, "--front-key", str(front.ssh_key)),
        *("--interval", "20s", "--vars-file", str(vars_file), "--insecure-host-keys", "--json"),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["status"], summary["mode"], summary["front"]) == ("ok", "timer", front.address)
    assert summary["changed"] > 0 and summary["error"] is None

    config = front.path("/etc/deployer/daemon.yaml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    read = read_daemon_file(config)
    assert (read.cluster, read.im_url, read.infra_id) == ("elastic", local_im.url, im_cluster.infra_id)
    assert read.auth_file == Path("/etc/deployer/auth.dat") and read.spec is not None
    assert groups_from_spec(spec_from_config(read.spec, "elastic")) == groups_from_spec(im_cluster.spec)
    service = front.path("/etc/systemd/system/deployer-daemon.service").read_text()
    assert (
        "ExecStart=/opt/deployer/venv/bin/deployer daemon run --once --config /etc/deployer/daemon.yaml\n"
        in service
    )
    timer = front.path("/etc/systemd/system/deployer-daemon.timer").read_text()
    assert "OnUnitInactiveSec=20s" in timer and "Unit=deployer-daemon.service" in timer

    # The IM credentials: on the front end in a 0600 auth file, and nowhere else.
    auth = front.path("/etc/deployer/auth.dat")
    assert auth.read_text() == im_user.auth_file.read_text()
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    secrets = [value for entry in im_user.entries for value in entry.secret_values()]
    assert secrets
    (log,) = _ansible_logs()
    log_text = log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    command_line = log_text.splitlines()[0]
    assert command_line.startswith("$ ") and "ansible-playbook" in command_line
    assert MASK not in command_line  # nothing had to be redacted from it: no secret was ever on it
    for secret in secrets:
        assert secret not in log_text
        assert secret not in config.read_text()
        assert secret not in done.stdout + done.stderr
    # No copy of the credentials stays behind on this machine (the per-run file is removed).
    assert not list(Path(tempfile.gettempdir()).glob("dp-daemon-*/auth.dat"))

    # Idempotent: a second install changes nothing.
    again = deployer(
        deployer_home,
        *("daemon", "install", "elastic", "--front", front.address, "--front-key", str(front.ssh_key)),
        *("--interval", "20s", "--vars-file", str(vars_file), "--insecure-host-keys", "--json"),
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] == 0


def test_a_local_cloud_deployment_contacts_no_host_and_points_at_the_hint(deployer_home: Path) -> None:
    spec, _ = fill_secrets(
        validate_spec({"name": "sim", "cloud": "local", "worker_groups": [{"name": "wn", "max": 2}]}),
        {},
        lambda *_, **__: "not-a-real-secret",
    )
    # Nothing listens at this URL: the IM is not asked either.
    _record("sim", spec, "http://127.0.0.1:9", None)
    done = deployer(deployer_home, "daemon", "install", "sim", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "cluster": "sim",
        "status": "skipped",
        "hint": "deployer daemon install-hint sim",
    }
    assert install_daemon(resolve_paths(), "sim") is None
    said: list[str] = []
    assert install_after_create(resolve_paths(), "sim", notify=said.append) is None
    assert len(said) == 1 and "deployer daemon install-hint sim" in said[0]
    assert _ansible_logs() == []  # no playbook ran


def test_an_unknown_deployment_is_a_user_error(deployer_home: Path) -> None:
    done = deployer(deployer_home, "daemon", "install", "nope", "--front", "127.0.0.1")
    assert done.returncode == 1
    assert "no deployment named 'nope'" in done.stderr
    assert _ansible_logs() == []


@pytest.mark.im
@pytest.mark.netns
@pytest.mark.slow
def test_install_with_a_refresh_token_ships_it_0600_and_not_todays_access_token(
    deployer_home: Path,
    tmp_path: Path,
    local_im: RunningIM,
    im_cluster: IMCluster,
    netns_hosts: HostFactory,
) -> None:
    (front,) = netns_hosts(1)
    access = make_jwt({"sub": "install-check", "exp": time.time() + 3600})
    auth = tmp_path / "auth.dat"
    write_auth_file(auth, [AuthEntry(IM_AUTH_TYPE, None, {"token": access}), AuthEntry("Dummy", "dummy", {})])
    _record("tokened", im_cluster.spec, local_im.url, im_cluster.infra_id, auth)
    refresh = tmp_path / "refresh-token"
    refresh.write_text(f"rt-{token_urlsafe(24)}\n")
    refresh.chmod(0o600)
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text("elastic_daemon_install: false\nelastic_daemon_service_mode: none\n")
    target = ("--front", front.address, "--front-key", str(front.ssh_key), "--insecure-host-keys")
    done = deployer(
        deployer_home,
        *("daemon", "install", "tokened", *target, "--vars-file", str(vars_file), "--json"),
        *("--refresh-token-file", str(refresh), "--issuer", "https://aai.egi.eu/auth/realms/egi"),
        *("--client-id", "token-portal"),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"

    config = front.path("/etc/deployer/daemon.yaml")
    assert read_daemon_file(config).token == TokenSource(
        source="refresh_token",
        refresh_token_file=Path("/etc/deployer/refresh_token"),
        issuer="https://aai.egi.eu/auth/realms/egi",
        client_id="token-portal",
    )
    shipped = front.path("/etc/deployer/refresh_token")
    assert shipped.read_text() == refresh.read_text()
    assert stat.S_IMODE(shipped.stat().st_mode) == 0o600
    front_auth = front.path("/etc/deployer/auth.dat")
    assert [e.fields for e in load_auth_file(front_auth)] == [{"token": ACCESS_TOKEN_PLACEHOLDER}, {}]
    # Neither today's access token (it would expire) nor the refresh token anywhere else.
    refresh_token = refresh.read_text().strip()
    (log,) = _ansible_logs()
    elsewhere = [log.read_text(), config.read_text(), front_auth.read_text(), done.stdout + done.stderr]
    assert not [text for text in elsewhere if access in text or refresh_token in text]
    for path in deployer_home.rglob("*"):
        if path.is_file():
            assert (
                access.encode() not in path.read_bytes() and refresh_token.encode() not in path.read_bytes()
            )

    # Two sources at once, or refresh settings without a refresh token: one line, nothing run.
    for flags, said in [
        (("--token-file", "/run/token", "--oidc-agent-account", "egi"), "are alternatives"),
        (("--client-id", "x"), "--client-id belongs to a refresh token"),
        (("--refresh-token-file", str(refresh)), "needs token.client_id"),
    ]:
        bad = deployer(deployer_home, "daemon", "install", "tokened", *target, *flags)
        assert bad.returncode == 1 and said in bad.stderr, bad.stderr
    assert len(_ansible_logs()) == 1
