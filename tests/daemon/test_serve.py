"""The long-running `deployer daemon run` as a real process: an edge-only cluster (no IM), a board woken by
Wake-on-LAN (caught on loopback UDP port 9), metrics scraped over HTTP, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from deployer.adapters.im.local_server import free_port
from deployer.adapters.power.edge import WOL_PORT, magic_packet
from tests.daemon.conftest import write_kubeconfig

MAC = "aa:bb:cc:dd:ee:42"


@pytest.fixture
def wol_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", WOL_PORT))
    except OSError as err:
        sock.close()
        pytest.skip(f"cannot listen on UDP 127.0.0.1:{WOL_PORT} ({err}); run inside `unshare -n` as root")
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return response.read().decode()


def test_the_daemon_wakes_a_board_for_a_pending_pod_and_stops_on_sigterm(
    deployer_home, tmp_path: Path, kube_api, wol_listener: socket.socket
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "elasticity": {"batch_idle": 0.2, "batch_max": 1, "resync_period": 1},
                "worker_groups": [],
                "edge_groups": [
                    {
                        "name": "pis",
                        "wol_broadcast": "127.0.0.1",
                        "hosts": [{"address": "127.0.0.1", "name": "pi-a", "mac": MAC}],
                    }
                ],
            }
        )
    )
    port = free_port()
    argv = [sys.executable, "-m", "deployer", "daemon", "run", "--cluster", "edge1", "--spec", str(spec)]
    argv += ["--kubeconfig", str(write_kubeconfig(tmp_path, kube_api.url)), "--metrics-port", str(port)]
    daemon = subprocess.Popen(
        argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        kube_api.add_pod("edge-job", cpu="500m", unschedulable=True)
        deadline = time.monotonic() + 30
        packet = None
        while packet is None:
            assert daemon.poll() is None, daemon.communicate()[1]
            assert time.monotonic() < deadline, "no Wake-on-LAN packet"
            try:
                packet = wol_listener.recv(1024)
            except TimeoutError:
                continue
        assert packet == magic_packet(MAC)
        expected = (
            'deployer_decisions_total{group="pis",kind="scale_up"} 1',
            'deployer_nodes{group="pis",phase="powering_on"} 1',  # set when the round ends
        )
        metrics = ""
        while not all(line in metrics.splitlines() for line in expected):
            assert time.monotonic() < deadline, metrics
            metrics = _scrape(port)
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            _, err = daemon.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.communicate()
            raise
    assert daemon.returncode == 0, err
    assert "stopped after" in err
