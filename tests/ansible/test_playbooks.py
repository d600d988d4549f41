"""The front-end playbooks and check mode, through the Ansible adapter (``run_playbook``) over real SSH.

One small lab per module: a front end and one fresh board. Asserts on the files the roles wrote (or,
in check mode, did not write), on the adapter's streamed events, and on its log (0600, no secrets).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from deployer.adapters.ansible.inventory import SshTarget, build_inventory
from deployer.adapters.ansible.runner import ProgressEvent, run_playbook
from deployer.core.elasticity.from_spec import groups_from_spec
from deployer.core.spec import ClusterSpec, fill_secrets, validate_spec
from deployer.daemon.config import embedded_config, read_daemon_file, spec_from_config
from deployer.lifecycle.prepare import render_prepared
from tests.ansible.cli import deployer
from tests.fixtures.netns import NetnsHost, NetnsLab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CREDENTIALS = "id = im; type = InfrastructureManager; username = admin; password = s3cret-daemon-pass\n"
KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:6443
  name: default
kind: Config
"""


ELASTIC_SPEC = {
    "name": "demo",
    "cloud": "local",
    "elasticity": {"idle_time": 120},
    "worker_groups": [{"name": "wn", "max": 3}, {"name": "wn-big", "max": 2, "cpus": 8}],
}


def elastic_cluster() -> tuple[ClusterSpec, str]:
    """A spec and the elasticity config its deployment TOSCA embeds (what the role gets as its spec)."""
    spec, _ = fill_secrets(validate_spec(ELASTIC_SPEC), {}, lambda *_, **__: "not-a-real-secret")
    return spec, embedded_config(render_prepared(spec).tosca_redacted, "demo")


@dataclass
class Lab:
    lab: NetnsLab
    front: NetnsHost
    board: NetnsHost

    def target(self, host: NetnsHost, name: str) -> SshTarget:
        return SshTarget(name=name, address=host.address, user="root", key_file=self.lab.client_key)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with NetnsLab() as netns:
        front, board = netns.add_hosts(2)
        yield Lab(netns, front, board)


def test_elastic_daemon_writes_units_config_and_private_credentials(lab: Lab, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    result = run_playbook(
        "elastic_daemon.yml",
        build_inventory(lab.target(lab.front, "front"), []),
        {
            "elastic_daemon_install": False,
            "elastic_daemon_service_mode": "none",
            "elastic_daemon_cluster": "demo",
            "elastic_daemon_spec": elastic_cluster()[1],
            "elastic_daemon_im_url": "https://im.example.org:8800",
            "elastic_daemon_infrastructure_id": "inf-1",
            "elastic_daemon_credentials": CREDENTIALS,
            "elastic_daemon_interval": "45s",
        },
        logs_dir=tmp_path / "logs",
        on_event=events.append,
        host_key_checking=False,
        secrets=["s3cret-daemon-pass"],
    )
    assert result.failures == []
    assert result.hosts["front"].succeeded and result.hosts["front"].changed > 0
    front = lab.front
    auth = front.path("/etc/deployer/auth.dat")
    assert auth.read_text() == CREDENTIALS
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    config = front.path("/etc/deployer/daemon.yaml")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert yaml.safe_load(config.read_text()) == {
        "cluster": "demo",
        "credentials_file": "/etc/deployer/auth.dat",
        "settings": {
            "im_url": "https://im.example.org:8800",
            "infrastructure_id": "inf-1",
            "spec": json.loads(elastic_cluster()[1]),
            "kubeconfig": "/etc/rancher/k3s/k3s.yaml",
        },
    }
    service = front.path("/etc/systemd/system/deployer-daemon.service").read_text()
    assert (
        "ExecStart=/opt/deployer/venv/bin/deployer daemon run --once --config /etc/deployer/daemon.yaml"
        in service
    )
    assert "Environment=DEPLOYER_HOME=/var/lib/deployer" in service
    timer = front.path("/etc/systemd/system/deployer-daemon.timer").read_text()
    assert "OnUnitInactiveSec=45s" in timer and "Unit=deployer-daemon.service" in timer
    # Progress was streamed per task and host; the log is private and holds no secret.
    assert any(
        e.kind == "result" and e.host == "front" and e.task.endswith("Write the credentials") for e in events
    )
    log = result.log_path.read_text()
    assert stat.S_IMODE(result.log_path.stat().st_mode) == 0o600
    assert "s3cret-daemon-pass" not in log
    assert "Write the daemon units" in log


def test_elastic_daemon_config_is_what_daemon_run_reads(lab: Lab, tmp_path: Path) -> None:
    """Long-running service mode, the spec as a mapping, credentials from a 0600 file on this machine."""
    spec, embedded = elastic_cluster()
    credentials = tmp_path / "auth.dat"
    credentials.write_text(CREDENTIALS)
    credentials.chmod(0o600)
    stale_timer = lab.front.path("/etc/systemd/system/deployer-daemon.timer")
    stale_timer.parent.mkdir(parents=True, exist_ok=True)
    stale_timer.write_text("[Timer]\nOnUnitInactiveSec=30s\n")  # left by an earlier timer-mode install
    result = run_playbook(
        "elastic_daemon.yml",
        build_inventory(lab.target(lab.front, "front"), []),
        {
            "elastic_daemon_install": False,
            "elastic_daemon_service_mode": "none",
            "elastic_daemon_run_mode": "service",
            "elastic_daemon_cluster": "demo",
            "elastic_daemon_spec": json.loads(embedded),
            "elastic_daemon_im_url": "https://im.example.org:8800",
            "elastic_daemon_infrastructure_id": "inf-2",
            "elastic_daemon_insecure": True,
            "elastic_daemon_extra_args": ["--metrics-port", "9464"],
            "elastic_daemon_credentials_file": str(credentials),
        },
        logs_dir=tmp_path / "logs",
        host_key_checking=False,
        secrets=["s3cret-daemon-pass"],
    )
    assert result.failures == [], result.failures
    front = lab.front
    read = read_daemon_file(front.path("/etc/deployer/daemon.yaml"))
    assert (read.cluster, read.im_url, read.infra_id, read.insecure) == (
        "demo",
        "https://im.example.org:8800",
        "inf-2",
        True,
    )
    assert read.auth_file == Path("/etc/deployer/auth.dat")
    assert read.kubeconfig == Path("/etc/rancher/k3s/k3s.yaml")
    assert read.spec is not None
    assert groups_from_spec(spec_from_config(read.spec, "demo")) == groups_from_spec(spec)
    auth = front.path("/etc/deployer/auth.dat")
    assert auth.read_text() == CREDENTIALS
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    service = front.path("/etc/systemd/system/deployer-daemon.service").read_text()
    exec_start = "ExecStart=/opt/deployer/venv/bin/deployer daemon run --config /etc/deployer/daemon.yaml"
    assert f"{exec_start} --metrics-port 9464\n" in service
    assert "Restart=on-failure" in service and "WantedBy=multi-user.target" in service
    assert "Type=oneshot" not in service
    assert not front.path("/etc/systemd/system/deployer-daemon.timer").exists()
    assert "s3cret-daemon-pass" not in result.log_path.read_text()


def test_kubeconfig_fetch_points_the_copy_at_the_front_end(lab: Lab, tmp_path: Path) -> None:
    source = lab.front.path("/etc/rancher/k3s/k3s.yaml")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(KUBECONFIG)
    dest = tmp_path / "kube" / "demo.yaml"
    result = run_playbook(
        "kubeconfig_fetch.yml",
        build_inventory(lab.target(lab.front, "front"), []),
        {"kubeconfig_fetch_dest": str(dest)},
        logs_dir=tmp_path / "logs",
        host_key_checking=False,
    )
    assert result.failures == [], result.failures
    fetched = yaml.safe_load(dest.read_text())
    assert fetched["clusters"][0]["cluster"]["server"] == f"https://{lab.front.address}:6443"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_edge_add_check_mode_reports_changes_and_writes_or_records_nothing(lab: Lab, tmp_path: Path) -> None:
    token = lab.front.path("/var/lib/rancher/k3s/server/node-token")
    token.parent.mkdir(parents=True, exist_ok=True)
    token.write_text("K10check-mode-token\n")
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(
        yaml.safe_dump(
            {
                "edge_node_apply_runtime": False,
                "edge_node_allow_reboot": False,
                "edge_node_service_mode": "exec",
            }
        )
    )
    key = str(lab.lab.client_key)
    done = deployer(
        tmp_path / "home",
        *(
            "edge",
            "add",
            "demo",
            lab.board.address,
            "--user",
            "root",
            "--key",
            key,
            "--front",
            lab.front.address,
        ),
        # Nothing listens there: check mode must not download into directories it did not create.
        *("--agent-url", f"http://{lab.lab.gateway}:9/k3s-arm64", "--vars-file", str(vars_file)),
        *("--insecure-host-keys", "--check", "--json"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (row,) = report["hosts"]
    assert (report["action"], row["status"]) == ("join (check)", "ok")
    assert row["changed"] > 0
    events = [
        json.loads(line) for line in Path(report["log"]).read_text().splitlines() if line.startswith("{")
    ]
    statuses = {e["task"].split(" : ")[-1]: e["status"] for e in events if e.get("host") == lab.board.address}
    assert statuses["Download the agent"] == "skipped"
    assert statuses["Write the agent configuration (server, labels, taints)"] == "changed"
    assert not lab.board.path("/etc/rancher/k3s").exists()
    assert not lab.board.path("/usr/local/bin/k3s").exists()
    assert not lab.board.path("/etc/modules-load.d/deployer-k8s.conf").exists()
    listed = deployer(tmp_path / "home", "edge", "list", "demo", "--json")
    assert json.loads(listed.stdout) == []


def test_unknown_playbook_is_a_user_error(tmp_path: Path) -> None:
    from deployer.errors import UserError

    with pytest.raises(UserError, match=r"no playbook nope\.yml"):
        run_playbook("nope.yml", build_inventory(None, []), {}, logs_dir=tmp_path)


def test_kubeconfig_command_fetches_a_private_copy_and_names_the_failed_task(
    lab: Lab, tmp_path: Path
) -> None:
    source = lab.front.path("/etc/rancher/k3s/k3s.yaml")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(KUBECONFIG)
    home = tmp_path / "home"
    front = ("--front", lab.front.address, "--front-key", str(lab.lab.client_key), "--insecure-host-keys")
    done = deployer(home, "kubeconfig", "demo", *front, "--json")
    assert done.returncode == 0, done.stderr
    written = Path(json.loads(done.stdout)["kubeconfig"])
    assert written == (home / "kubeconfig" / "demo.yaml").resolve()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert yaml.safe_load(written.read_text())["clusters"][0]["cluster"]["server"] == (
        f"https://{lab.front.address}:6443"
    )
    missing = deployer(home, "kubeconfig", "demo", *front, "--src", "/etc/no/such/kubeconfig")
    assert missing.returncode == 3
    [line] = [x for x in missing.stderr.splitlines() if x.startswith("error:")]
    assert "Read the kubeconfig on the front end" in line and "log:" in line
