"""The edge power manager against real sockets and real SSH: Wake-on-LAN packets caught by a loopback UDP
listener, and the SSH shutdown run on a network-namespace sshd host (a harmless marker command stands in
for ``shutdown -h now``, which would stop this machine)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from deployer.adapters.power.edge import EdgeBoard, EdgePowerManager, magic_packet
from deployer.core.elasticity.model import GroupKind, NodeGroup, Resources
from deployer.errors import TransientError, UserError

SHAPE = Resources(cpu_m=4000, memory_mib=4096, pods=110)


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[bytes]:
    packets = []
    sock.settimeout(0.3)
    try:
        while True:
            packets.append(sock.recv(1024))
    except TimeoutError:
        return packets


def test_magic_packet_layout() -> None:
    packet = magic_packet("AA-bb-cc-dd-ee-01")
    assert len(packet) == 102
    assert packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("aabbccddee01") * 16
    with pytest.raises(UserError, match="MAC"):
        magic_packet("aa:bb:cc")


def test_wake_on_lan_wakes_only_the_chosen_free_boards(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    macs = {"pi-1": "aa:bb:cc:dd:ee:01", "pi-2": "aa:bb:cc:dd:ee:02", "pi-3": "aa:bb:cc:dd:ee:03"}
    boards = {
        name: EdgeBoard(name, address="127.0.0.1", mac=mac, wol_broadcast="127.0.0.1", wol_port=port)
        for name, mac in macs.items()
    }
    group = NodeGroup("edge", 0, 3, SHAPE, kind=GroupKind.EDGE, hosts=tuple(macs))
    started = EdgePowerManager(boards).power_on(group, 1, busy={"pi-1"})
    assert [node.name for node in started] == ["pi-2"]
    assert _received(udp_listener) == [magic_packet(macs["pi-2"])]


def test_always_on_boards_get_no_packet(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    board = EdgeBoard(
        "pi-1", address="127.0.0.1", mac="aa:bb:cc:dd:ee:01", wol_broadcast="127.0.0.1", wol_port=port
    )
    group = NodeGroup("edge", 0, 1, SHAPE, kind=GroupKind.EDGE_ALWAYS_ON, hosts=("pi-1",))
    manager = EdgePowerManager({"pi-1": board})
    assert [node.name for node in manager.power_on(group, 1)] == ["pi-1"]
    manager.power_off(group, ["pi-1"])  # nothing to run: it stays on
    assert _received(udp_listener) == []


@pytest.mark.netns
def test_ssh_shutdown_runs_on_the_board(netns_hosts, tmp_path) -> None:
    (host,) = netns_hosts(1)
    marker = tmp_path / "shutdown-ran"
    board = EdgeBoard(
        "pi-1",
        address=host.address,
        mac="aa:bb:cc:dd:ee:01",
        ssh_user="root",
        ssh_key=str(host.ssh_key),
        known_hosts=str(tmp_path / "known_hosts"),
        shutdown_command=f"hostname > {marker}",
    )
    group = NodeGroup("edge", 0, 1, SHAPE, kind=GroupKind.EDGE, hosts=("pi-1",))
    EdgePowerManager({"pi-1": board}, ssh_timeout=20).power_off(group, ["pi-1"])
    assert marker.read_text().strip() == host.name  # ran inside the board's namespaces, not here


@pytest.mark.netns
def test_ssh_shutdown_of_an_unreachable_board_is_transient(netns_hosts, tmp_path) -> None:
    (host,) = netns_hosts(1, start=False)  # the board's network exists, its sshd does not
    board = EdgeBoard(
        "pi-1",
        address=host.address,
        ssh_key=str(host.ssh_key),
        known_hosts=str(tmp_path / "known_hosts"),
        shutdown_command="true",
    )
    group = NodeGroup("edge", 0, 1, SHAPE, kind=GroupKind.EDGE, hosts=("pi-1",))
    with pytest.raises(TransientError, match="pi-1"):
        EdgePowerManager({"pi-1": board}, ssh_timeout=6).power_off(group, ["pi-1"])
