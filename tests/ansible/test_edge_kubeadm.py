"""`deployer edge add/remove` against a kubeadm front end (the IM's kind), for real over SSH.

One lab per module: a kubeadm front end (admin.conf, stand-in ``kubectl`` and ``kubeadm``), two boards
(stand-in ``systemctl``; the first looks like a Raspberry Pi), and a second front end whose API server
does not answer. The release binaries come from a mirror on the bridge address, and the kubeadm and
kubelet there are the stand-ins too (tests/ansible/kube_standins.py), so every call on every host is
recorded in order and the "cluster" (tokens, nodes) is shared between them. Tests build on each other:
join; the same join again; a version mismatch; an API that does not answer; remove.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ansible.artifact_server import serve_directory
from tests.ansible.cli import deployer
from tests.ansible.kube_standins import FakeCluster, release_mirror
from tests.fixtures.netns import NetnsHost, NetnsLab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

VERSION = "v1.30.4"
ADMIN = "/etc/kubernetes/admin.conf"
JOIN_CONFIG = "/etc/kubernetes/deployer-join.yaml"
PI_CMDLINE = "console=serial0,115200 root=PARTUUID=abcd-02 rootwait\n"


@dataclass
class Lab:
    lab: NetnsLab
    front: NetnsHost
    boards: list[NetnsHost]
    silent_front: NetnsHost  # its API server refuses connections
    cluster: FakeCluster
    vars_file: Path
    spec_file: Path
    downloads: list[str]
    home: Path


def _kubeadm_front(host: NetnsHost, cluster: FakeCluster) -> None:
    admin = host.path(ADMIN)
    admin.parent.mkdir(parents=True)
    admin.write_text(
        f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{cluster.endpoint}\n"
    )
    admin.chmod(0o600)
    cluster.install(host.path("/usr/local/bin"), "kubectl", "kubeadm")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with NetnsLab() as netns:
        front, *boards, silent_front = netns.add_hosts(4)
        cluster = FakeCluster.create(
            netns.workdir / "cluster", version=VERSION, endpoint=f"{front.address}:6443"
        )
        _kubeadm_front(front, cluster)
        _kubeadm_front(silent_front, cluster)
        silent_front.path("/etc/kubernetes/fake-api-down").write_text("")
        for board in boards:
            cluster.install(board.path("/usr/local/bin"), "systemctl")
        cmdline = boards[0].path("/boot/firmware/cmdline.txt")
        cmdline.parent.mkdir(parents=True)
        cmdline.write_text(PI_CMDLINE)
        mirror = tmp_path_factory.mktemp("mirror")
        paths = release_mirror(mirror, cluster)
        with serve_directory(netns.gateway, mirror) as (base_url, downloads):
            settings = tmp_path_factory.mktemp("settings")
            vars_file = settings / "edge-vars.yml"
            vars_file.write_text(
                yaml.safe_dump(
                    {
                        # The namespace hosts share this machine's kernel and cannot reboot.
                        "edge_node_apply_runtime": False,
                        "edge_node_allow_reboot": False,
                        "edge_node_registry_mirrors": {"docker.io": [f"http://{netns.gateway}:5000"]},
                        **{name: base_url + path for name, path in paths.items()},
                    }
                )
            )
            spec_file = settings / "spec.yml"
            spec_file.write_text(
                yaml.safe_dump(
                    {
                        "name": "demo",
                        "edge_groups": [
                            {
                                "name": "pis",
                                "power": "always-on",
                                "labels": {"site": "lab"},
                                "taints": [{"key": "edge", "value": "true", "effect": "NoSchedule"}],
                                "hosts": [{"address": b.address} for b in boards],
                            }
                        ],
                    }
                )
            )
            home = tmp_path_factory.mktemp("home")
            home.chmod(0o700)
            yield Lab(netns, front, boards, silent_front, cluster, vars_file, spec_file, downloads, home)


def edge_add(
    lab: Lab,
    boards: list[NetnsHost],
    *,
    front: NetnsHost | None = None,
    home: Path | None = None,
    vars_file=None,
) -> subprocess.CompletedProcess[str]:
    return deployer(
        home or lab.home,
        *("edge", "add", "demo", *[b.address for b in boards]),
        *("--user", "root", "--key", str(lab.lab.client_key), "--front", (front or lab.front).address),
        *("--spec", str(lab.spec_file), "--group", "pis", "--label", "rack=2"),
        *("--vars-file", str(vars_file or lab.vars_file), "--insecure-host-keys", "--json"),
    )


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {row["host"]: row for row in json.loads(done.stdout)["hosts"]}


def position(calls: list[list[str]], *prefix: str, after: int = -1) -> int:
    """Index of the first call after ``after`` that starts with ``prefix``."""
    for index, argv in enumerate(calls):
        if index > after and argv[: len(prefix)] == list(prefix):
            return index
    raise AssertionError(f"no call {' '.join(prefix)} after #{after} in {calls}")


def unit_state(board: NetnsHost) -> dict[str, dict]:
    return json.loads(board.path("/var/lib/fake-systemd/units.json").read_text())


@pytest.fixture(scope="module")
def first_join(lab: Lab) -> subprocess.CompletedProcess[str]:
    return edge_add(lab, lab.boards)


def test_boards_join_with_labels_and_taints_from_the_spec(lab: Lab, first_join) -> None:
    assert first_join.returncode == 0, first_join.stderr
    rows = summary(first_join)
    nodes = lab.cluster.nodes()
    assert set(nodes) == {b.name for b in lab.boards}
    for board in lab.boards:
        row = rows[board.address]
        assert (row["status"], row["node"]) == ("ok", board.name), row
        node = nodes[board.name]
        labels = node["labels"]
        assert labels["kubernetes.io/arch"] == "arm64"
        assert labels["deployer.io/group"] == "pis"
        assert labels["deployer.io/edge-host"] == board.address
        assert (labels["site"], labels["rack"]) == ("lab", "2")  # from the spec, and from --label
        assert node["taints"] == [{"key": "edge", "value": "true", "effect": "NoSchedule"}]
        assert node["kubelet_version"] == VERSION


def test_front_end_makes_one_short_lived_token_per_board_then_sees_each_node(lab: Lab, first_join) -> None:
    calls = lab.cluster.calls_by(lab.front.name)
    version = position(calls, "kubectl", "--kubeconfig", ADMIN, "version", "-o", "json")
    tokens = [i for i, argv in enumerate(calls) if argv[:3] == ["kubeadm", "token", "create"]]
    assert len(tokens) == len(lab.boards) and min(tokens) > version
    for board in lab.boards:
        (token,) = [i for i in tokens if f"deployer edge join of {board.name}" in calls[i]]
        assert calls[token][3:7] == ["--kubeconfig", ADMIN, "--ttl", "15m0s"]
        assert calls[token][-1] == "--print-join-command"
        position(
            calls, "kubectl", "--kubeconfig", ADMIN, "get", "node", board.name, "-o", "json", after=token
        )
    # The node registered with its labels and taints: nothing to fix afterwards.
    assert not [argv for argv in calls if argv[3:4] in (["label"], ["taint"])]
    expiries = lab.cluster.tokens().values()
    assert all(expiry <= time.time() + 15 * 60 for expiry in expiries) and len(expiries) == len(lab.boards)


def test_board_installs_and_starts_containerd_before_kubeadm_join(lab: Lab, first_join) -> None:
    for board in lab.boards:
        calls = lab.cluster.calls_by(board.name)
        reload = position(calls, "systemctl", "daemon-reload")
        containerd = position(calls, "systemctl", "start", "containerd", after=reload)
        enable_kubelet = position(calls, "systemctl", "enable", "kubelet", after=containerd)
        join = position(calls, "kubeadm", "join", "--config", JOIN_CONFIG, after=enable_kubelet)
        position(calls, "systemctl", "restart", "kubelet", after=join)  # kubeadm join starts the kubelet
        assert position(calls, "kubeadm", "version", "-o", "short") < join  # checked against the front end
        units = unit_state(board)
        assert units["containerd.service"]["active"] and units["containerd.service"]["enabled"]
        assert units["kubelet.service"]["active"] and units["kubelet.service"]["enabled"]
        assert board.path("/etc/kubernetes/kubelet.conf").exists()
        assert not board.path(JOIN_CONFIG).exists()  # it held the bootstrap token
        for binary in ("/usr/local/bin/kubeadm", "/usr/local/bin/kubelet", "/usr/local/bin/containerd"):
            assert board.path(binary).stat().st_mode & stat.S_IXUSR, binary
        for binary in ("/usr/local/bin/crictl", "/usr/local/sbin/runc", "/opt/cni/bin/bridge"):
            assert board.path(binary).exists(), binary
        containerd_config = board.path("/etc/containerd/config.toml").read_text()
        assert "SystemdCgroup = true" in containerd_config
        mirror = board.path("/etc/containerd/certs.d/docker.io/hosts.toml").read_text()
        assert f'[host."http://{lab.lab.gateway}:5000"]' in mirror
        kubelet_unit = board.path("/etc/systemd/system/kubelet.service").read_text()
        assert "--kubeconfig=/etc/kubernetes/kubelet.conf" in kubelet_unit
    pi = lab.boards[0].path("/boot/firmware/cmdline.txt").read_text()
    assert pi == PI_CMDLINE.rstrip("\n") + " cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset\n"
    # Each artifact was downloaded once per board, for arm64, at the front end's version.
    plain = [d for d in lab.downloads if not d.startswith("check ")]
    assert plain.count(f"/dl/{VERSION}/bin/linux/arm64/kubeadm") == len(lab.boards)
    assert (
        plain.count(
            "/gh/containerd/containerd/releases/download/v1.7.22/containerd-1.7.22-linux-arm64.tar.gz"
        )
        == 2
    )


def test_bootstrap_tokens_stay_out_of_logs_and_state(lab: Lab, first_join) -> None:
    tokens = list(lab.cluster.tokens())
    logs = sorted((lab.home / "logs").glob("ansible-edge_join-*.log"))
    assert tokens and logs
    for path in [*logs, lab.home / "state.db"]:
        text = path.read_bytes()
        assert not any(token.encode() in text for token in tokens), path
        assert not any(token.split(".")[1].encode() in text for token in tokens), path


@pytest.fixture(scope="module")
def rerun(lab: Lab, first_join) -> tuple[subprocess.CompletedProcess[str], dict[str, int], int]:
    """The same join again. Meanwhile someone changed a label and removed the taint of the second
    board's node: kubelet sets them only when a node registers, so the run puts them back."""
    drifted = lab.boards[1].name
    state = json.loads(lab.cluster.state.read_text())
    state["nodes"][drifted]["labels"]["site"] = "elsewhere"
    state["nodes"][drifted]["taints"] = []
    lab.cluster.state.write_text(json.dumps(state))
    counts = {b.name: len(lab.cluster.calls_by(b.name)) for b in [lab.front, *lab.boards]}
    downloads = len(lab.downloads)
    return edge_add(lab, lab.boards), counts, downloads


def test_second_join_changes_nothing_but_puts_back_labels_and_taints(lab: Lab, rerun) -> None:
    done, counts, downloads = rerun
    assert done.returncode == 0, done.stderr
    steady, drifted = lab.boards
    row = summary(done)[steady.address]
    assert (row["status"], row["changed"], row["failed"]) == ("ok", 0, 0), row
    row = summary(done)[drifted.address]
    assert (row["status"], row["changed"], row["failed"]) == ("ok", 2, 0), row
    new_front = lab.cluster.calls_by(lab.front.name)[counts[lab.front.name] :]
    assert not [argv for argv in new_front if argv[1:3] == ["token", "create"]]
    changes = [argv[3:] for argv in new_front if argv[3:4] in (["label"], ["taint"])]
    assert changes == [
        ["label", "node", drifted.name, "--overwrite", "site=lab"],
        ["taint", "node", drifted.name, "--overwrite", "edge=true:NoSchedule"],
    ]
    node = lab.cluster.nodes()[drifted.name]
    assert node["labels"]["site"] == "lab"
    assert node["taints"] == [{"key": "edge", "value": "true", "effect": "NoSchedule"}]
    for board in lab.boards:
        new_board = lab.cluster.calls_by(board.name)[counts[board.name] :]
        assert not [argv for argv in new_board if argv[:2] == ["kubeadm", "join"]]
        assert not [argv for argv in new_board if argv[1:2] in (["restart"], ["start"], ["enable"])]
    # Only the published checksums were fetched again: nothing was downloaded twice.
    assert all(d.endswith((".sha256", ".sha256sum")) for d in lab.downloads[downloads:])
    listed = json.loads(deployer(lab.home, "edge", "list", "demo", "--json").stdout)
    assert {row["host"] for row in listed} == {b.address for b in lab.boards}


def test_a_version_other_than_the_front_ends_is_refused(lab: Lab, rerun, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned.yml"
    pinned.write_text(
        yaml.safe_dump({**yaml.safe_load(lab.vars_file.read_text()), "edge_node_kube_version": "v1.29.8"})
    )
    downloads = len(lab.downloads)
    done = edge_add(lab, [lab.boards[0]], vars_file=pinned, home=tmp_path / "home")
    assert done.returncode == 1
    error = summary(done)[lab.boards[0].address]["error"]
    assert "at task 'edge_node : Check the Kubernetes version against the front end'" in error
    assert "Kubernetes v1.29.8 but the front end runs v1.30.4" in error
    assert "same minor version (1.30)" in error
    assert len(lab.downloads) == downloads


def test_front_end_whose_api_does_not_answer_fails_every_board(lab: Lab, rerun, tmp_path: Path) -> None:
    done = edge_add(lab, lab.boards, front=lab.silent_front, home=tmp_path / "home")
    assert done.returncode == 1
    for board in lab.boards:
        row = summary(done)[board.address]
        assert row["status"] == "failed"
        assert row["error"].startswith(
            f"{board.address}: failed at task 'kube_front : Check that the API server answered': front end "
            f"{lab.silent_front.address}: the Kubernetes API on the front end did not answer `kubectl version`"
        ), row["error"]
        assert f"The connection to the server {lab.cluster.endpoint} was refused" in row["error"]
    assert json.loads(deployer(tmp_path / "home", "edge", "list", "demo", "--json").stdout) == []


def test_remove_drains_resets_and_deletes_the_node(lab: Lab, rerun) -> None:
    leaving, staying = lab.boards[1], lab.boards[0]
    cni = leaving.path("/etc/cni/net.d/10-flannel.conflist")  # what the cluster's CNI would have written
    cni.parent.mkdir(parents=True, exist_ok=True)
    cni.write_text("{}")
    front_before = len(lab.cluster.calls_by(lab.front.name))
    done = deployer(
        lab.home,
        *("edge", "remove", "demo", leaving.address, "--front", lab.front.address),
        *("--front-key", str(lab.lab.client_key), "--insecure-host-keys", "--json"),
    )
    assert done.returncode == 0, done.stderr
    assert summary(done)[leaving.address]["status"] == "ok"
    front = lab.cluster.calls_by(lab.front.name)[front_before:]
    drain = position(front, "kubectl", "--kubeconfig", ADMIN, "drain", leaving.name, "--ignore-daemonsets")
    position(
        front,
        "kubectl",
        "--kubeconfig",
        ADMIN,
        "delete",
        "node",
        leaving.name,
        "--ignore-not-found",
        after=drain,
    )
    board = lab.cluster.calls_by(leaving.name)
    reset = position(
        board, "kubeadm", "reset", "--force", "--cri-socket", "unix:///run/containerd/containerd.sock"
    )
    position(board, "systemctl", "disable", "kubelet", after=reset)
    assert set(lab.cluster.nodes()) == {staying.name}
    units = unit_state(leaving)
    assert not units["kubelet.service"]["active"] and not units["kubelet.service"]["enabled"]
    for gone in (
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/deployer-edge.json",
        "/etc/cni/net.d/10-flannel.conflist",
    ):
        assert not leaving.path(gone).exists(), gone
    assert staying.path("/etc/kubernetes/kubelet.conf").exists()
    listed = json.loads(deployer(lab.home, "edge", "list", "demo", "--json").stdout)
    assert [row["host"] for row in listed] == [staying.address]
