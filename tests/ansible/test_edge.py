"""`deployer edge add/list/remove` for real: ansible-playbook over SSH to namespace hosts.

One lab per module: a front end (serves the join token, has a recording kubectl), three edge boards
and one board whose sshd never starts (unreachable). The agent "binary" the role downloads comes from
an HTTP server on the bridge address: a script that records its arguments and config, as a k3s agent
would receive them. Tests run in order and build on each other's joins (join; the same join again
with an unreachable board added; remove); each asserts on the boards' own filesystems.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ansible.artifact_server import serve_directory
from tests.ansible.cli import deployer
from tests.fixtures.netns import NetnsHost, NetnsLab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

JOIN_TOKEN = "K10edge-join-token-for-tests::server:4f1c2a"

FAKE_AGENT = """#!/usr/bin/python3
# Stands in for a k3s binary: records how it was started, like a join would.
import json, os, sys, time
log_dir = "/var/lib/fake-agent"
os.makedirs(log_dir, exist_ok=True)
args = sys.argv[1:]
if args[:1] == ["agent-stop"]:
    open(os.path.join(log_dir, "stopped"), "w").write("stopped\\n")
    sys.exit(0)
config = args[args.index("--config") + 1]
record = {"argv": args, "config": open(config).read(), "time": time.time()}
with open(os.path.join(log_dir, "joins.jsonl"), "a") as out:
    out.write(json.dumps(record) + "\\n")
"""

FAKE_KUBECTL = """#!/bin/sh
# Records each call; answers like kubectl for get/drain/delete of a node.
echo "$*" >> /var/lib/fake-kubectl.log
case "$3" in
  get) echo "node/$5" ;;
  drain) echo "node/$4 cordoned"; echo "node/$4 drained" ;;
  delete) echo "node \\"$5\\" deleted" ;;
esac
"""


@dataclass
class Lab:
    lab: NetnsLab
    front: NetnsHost
    edges: list[NetnsHost]
    down: NetnsHost
    vars_file: Path
    agent_url: str
    downloads: list[str]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with NetnsLab() as netns:
        front, *edges = netns.add_hosts(4)
        (down,) = netns.add_hosts(1, start=False)
        served = tmp_path_factory.mktemp("artifacts")
        (served / "k3s-arm64").write_text(FAKE_AGENT)
        with serve_directory(netns.gateway, served) as (base_url, downloads):
            _prepare_front(front)
            # Board 1 looks like a Raspberry Pi: a boot command line and a swap line in fstab.
            cmdline = edges[0].path("/boot/firmware/cmdline.txt")
            cmdline.parent.mkdir(parents=True)
            cmdline.write_text("console=serial0,115200 root=PARTUUID=abcd-02 rootwait\n")
            edges[0].path("/etc/fstab").write_text(
                "PARTUUID=abcd-02 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"
            )
            vars_file = tmp_path_factory.mktemp("vars") / "edge-vars.yml"
            vars_file.write_text(
                yaml.safe_dump(
                    {
                        # The namespace hosts share this machine's kernel and have no systemd.
                        "edge_node_apply_runtime": False,
                        "edge_node_allow_reboot": False,
                        "edge_node_service_mode": "exec",
                        "edge_node_exec_stop": ["/usr/local/bin/k3s", "agent-stop"],
                        "edge_node_registry_mirrors": {"docker.io": [f"http://{netns.gateway}:5000"]},
                    }
                )
            )
            yield Lab(
                lab=netns,
                front=front,
                edges=edges,
                down=down,
                vars_file=vars_file,
                agent_url=f"{base_url}/k3s-arm64",
                downloads=downloads,
            )


def _prepare_front(front: NetnsHost) -> None:
    token = front.path("/var/lib/rancher/k3s/server/node-token")
    token.parent.mkdir(parents=True)
    token.write_text(JOIN_TOKEN + "\n")
    kubectl = front.path("/usr/local/bin/kubectl")
    kubectl.parent.mkdir(parents=True)
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)


def edge_add(
    lab: Lab, home: Path, hosts: list[NetnsHost], *extra: str, front: NetnsHost | None = None
) -> subprocess.CompletedProcess[str]:
    return deployer(
        home,
        "edge",
        "add",
        "demo",
        *[h.address for h in hosts],
        "--user",
        "root",
        "--key",
        str(lab.lab.client_key),
        "--front",
        (front or lab.front).address,
        "--group",
        "pis",
        "--label",
        "site=lab",
        "--taint",
        "edge=true:NoSchedule",
        "--agent-url",
        lab.agent_url,
        "--vars-file",
        str(lab.vars_file),
        "--insecure-host-keys",
        "--json",
        *extra,
    )


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {row["host"]: row for row in json.loads(done.stdout)["hosts"]}


def joins(host: NetnsHost) -> list[dict]:
    path = host.path("/var/lib/fake-agent/joins.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deployer-home")
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def first_join(lab: Lab, home: Path) -> subprocess.CompletedProcess[str]:
    return edge_add(lab, home, lab.edges)


def test_join_writes_agent_config_labels_taints_and_token(lab: Lab, first_join) -> None:
    assert first_join.returncode == 0, first_join.stderr
    rows = summary(first_join)
    assert set(rows) == {h.address for h in lab.edges}
    for host in lab.edges:
        assert rows[host.address]["status"] == "ok"
        assert rows[host.address]["changed"] > 0
        assert rows[host.address]["node"] == host.name
        config = yaml.safe_load(host.path("/etc/rancher/k3s/config.yaml").read_text())
        assert config["server"] == f"https://{lab.front.address}:6443"
        assert config["node-name"] == host.name
        assert config["token-file"] == "/etc/rancher/k3s/token"
        assert config["node-label"] == [
            "kubernetes.io/arch=arm64",
            "deployer.io/group=pis",
            f"deployer.io/edge-host={host.address}",
            "site=lab",
        ]
        assert config["node-taint"] == ["edge=true:NoSchedule"]
        token = host.path("/etc/rancher/k3s/token")
        assert token.read_text().strip() == JOIN_TOKEN
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert stat.S_IMODE(host.path("/etc/rancher/k3s/config.yaml").stat().st_mode) == 0o600
        unit = host.path("/etc/systemd/system/k3s-agent.service").read_text()
        assert "ExecStart=/usr/local/bin/k3s agent --config /etc/rancher/k3s/config.yaml" in unit
        registries = yaml.safe_load(host.path("/etc/rancher/k3s/registries.yaml").read_text())
        assert registries == {"mirrors": {"docker.io": {"endpoint": [f"http://{lab.lab.gateway}:5000"]}}}
        assert host.path("/etc/modules-load.d/deployer-k8s.conf").read_text().split() == [
            "overlay",
            "br_netfilter",
        ]
        assert "net.ipv4.ip_forward = 1" in host.path("/etc/sysctl.d/90-deployer-k8s.conf").read_text()
        # The agent was started once, with its config file, and saw the labels and taints in it.
        (started,) = joins(host)
        assert started["argv"] == ["agent", "--config", "/etc/rancher/k3s/config.yaml"]
        assert "deployer.io/group=pis" in started["config"]
    pi = lab.edges[0]
    cmdline = pi.path("/boot/firmware/cmdline.txt").read_text()
    assert (
        cmdline
        == "console=serial0,115200 root=PARTUUID=abcd-02 rootwait cgroup_memory=1 cgroup_enable=memory"
        " cgroup_enable=cpuset\n"
    )
    assert "# /swapfile none swap sw 0 0" in pi.path("/etc/fstab").read_text()
    assert lab.downloads.count("/k3s-arm64") == len(lab.edges)


def test_the_join_token_stays_out_of_logs_and_state(home: Path, first_join) -> None:
    logs = sorted((home / "logs").glob("ansible-edge_join-*.log"))
    assert logs and all(stat.S_IMODE(log.stat().st_mode) == 0o600 for log in logs)
    for path in [*logs, home / "state.db"]:
        assert JOIN_TOKEN.encode() not in path.read_bytes(), path


def test_edge_list_shows_the_joined_hosts(lab: Lab, home: Path, first_join) -> None:
    done = deployer(home, "edge", "list", "demo", "--json")
    assert done.returncode == 0, done.stderr
    listed = {row["host"]: row for row in json.loads(done.stdout)}
    assert set(listed) == {h.address for h in lab.edges}
    assert {row["node_group"] for row in listed.values()} == {"pis"}
    assert {row["node_name"] for row in listed.values()} == {h.name for h in lab.edges}


@pytest.fixture(scope="module")
def rerun(lab: Lab, home: Path, first_join) -> tuple[subprocess.CompletedProcess[str], int]:
    """The same join again, plus a board that is off: one run shows idempotence and isolation."""
    downloads_before = len(lab.downloads)
    return edge_add(lab, home, [*lab.edges, lab.down]), downloads_before


def test_second_run_changes_nothing(lab: Lab, rerun) -> None:
    again, downloads_before = rerun
    rows = summary(again)
    for host in lab.edges:
        row = rows[host.address]
        assert (row["status"], row["changed"], row["failed"]) == ("ok", 0, 0), row
        assert len(joins(host)) == 1  # the agent was not restarted
    # get_url only re-checked the artifact (If-Modified-Since); nothing was downloaded again.
    assert all(d.startswith("check ") for d in lab.downloads[downloads_before:])


def test_unreachable_host_fails_alone(lab: Lab, home: Path, rerun) -> None:
    done, _ = rerun
    assert done.returncode == 1
    rows = summary(done)
    assert {rows[h.address]["status"] for h in lab.edges} == {"ok"}
    down = rows[lab.down.address]
    assert down["status"] == "unreachable"
    assert down["error"].startswith(f"{lab.down.address}: unreachable at task 'Gathering Facts'")
    assert f"{lab.down.address}: unreachable" in done.stderr
    listed = json.loads(deployer(home, "edge", "list", "demo", "--json").stdout)
    assert {row["host"] for row in listed} == {h.address for h in lab.edges}
    assert not lab.down.path("/etc/rancher/k3s").exists()


def test_remove_reverses_the_join(lab: Lab, home: Path, first_join) -> None:
    leaving, staying = lab.edges[2], lab.edges[1]
    done = deployer(
        home,
        "edge",
        "remove",
        "demo",
        leaving.address,
        "--front",
        lab.front.address,
        "--front-key",
        str(lab.lab.client_key),
        "--insecure-host-keys",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert summary(done)[leaving.address]["status"] == "ok"
    calls = lab.front.path("/var/lib/fake-kubectl.log").read_text().splitlines()
    assert any(f"drain {leaving.name} --ignore-daemonsets" in call for call in calls)
    assert any(f"delete node {leaving.name} --ignore-not-found" in call for call in calls)
    for gone in (
        "/etc/rancher/k3s/config.yaml",
        "/etc/rancher/k3s/token",
        "/etc/systemd/system/k3s-agent.service",
        "/usr/local/bin/k3s",
        "/etc/rancher/k3s/deployer-edge.json",
    ):
        assert not leaving.path(gone).exists(), gone
    assert leaving.path("/var/lib/fake-agent/stopped").exists()
    assert staying.path("/etc/rancher/k3s/config.yaml").exists()
    listed = json.loads(deployer(home, "edge", "list", "demo", "--json").stdout)
    assert {row["host"] for row in listed} == {lab.edges[0].address, staying.address}


def test_unreachable_front_end_fails_every_board_and_records_nothing(lab: Lab, tmp_path: Path) -> None:
    done = edge_add(lab, tmp_path, [lab.edges[1]], front=lab.down)
    assert done.returncode == 1
    row = summary(done)[lab.edges[1].address]
    assert row["status"] == "failed"
    assert row["error"].startswith(
        f"{lab.edges[1].address}: failed at task 'Reach the front end': front end {lab.down.address}"
    )
    assert json.loads(deployer(tmp_path, "edge", "list", "demo", "--json").stdout) == []
