"""Edge power manager: owned boards (Raspberry Pi and the like) woken by Wake-on-LAN and stopped over SSH.

Called by the daemon actuator for edge groups. A board is never created or destroyed: "power on" picks boards
of the group that the daemon does not already count as on, and "power off" shuts them down. Boards of an
``edge-always-on`` group stay powered; the actuator cordons/uncordons them and this manager does nothing.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from deployer.adapters.power.port import PoweredOn
from deployer.core.elasticity.model import GroupKind, NodeGroup
from deployer.errors import TransientError, UserError

log = logging.getLogger(__name__)

WOL_PORT = 9
_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)
# ssh exits 255 both when it cannot connect and when the board drops the session while shutting down.
_DROPPED_BY_SHUTDOWN = ("closed by remote host", "connection reset", "broken pipe")


@dataclass(frozen=True, slots=True)
class EdgeBoard:
    """How to reach one board. ``name`` is its Kubernetes node name."""

    name: str
    address: str  # SSH host (name or IP) for the shutdown
    mac: str | None = None  # Wake-on-LAN target; None for boards that cannot be woken
    ssh_user: str = "root"
    ssh_port: int = 22
    ssh_key: str | None = None
    known_hosts: str | None = None  # a private known_hosts file; None uses the user's
    wol_broadcast: str = "255.255.255.255"
    wol_port: int = WOL_PORT
    shutdown_command: str = "sudo shutdown -h now"


def magic_packet(mac: str) -> bytes:
    """The Wake-on-LAN payload: six 0xFF bytes, then the MAC address 16 times."""
    if not _MAC.match(mac.strip()):
        raise UserError(f"invalid MAC address {mac!r}: expected six hex pairs like aa:bb:cc:dd:ee:ff")
    raw = bytes.fromhex(re.sub(r"[:-]", "", mac.strip()))
    return b"\xff" * 6 + raw * 16


def send_magic_packet(mac: str, broadcast: str = "255.255.255.255", port: int = WOL_PORT) -> None:
    packet = magic_packet(mac)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sock.sendto(packet, (broadcast, port))
        except OSError as err:
            raise TransientError(f"Wake-on-LAN to {broadcast}:{port} failed: {err}") from err


class EdgePowerManager:
    """``PowerManager`` for edge groups. ``boards`` maps node names to how to reach them."""

    def __init__(self, boards: Mapping[str, EdgeBoard], *, ssh_timeout: float = 30.0) -> None:
        self._boards = dict(boards)
        self._ssh_timeout = ssh_timeout

    def _board(self, name: str) -> EdgeBoard:
        board = self._boards.get(name)
        if board is None:
            raise UserError(f"edge node {name!r} has no board entry (address/MAC) in the spec")
        return board

    def power_on(self, group: NodeGroup, count: int, *, busy: Collection[str] = ()) -> list[PoweredOn]:
        free = [host for host in group.hosts if host not in busy]
        chosen = free[: max(count, 0)]
        if group.kind is GroupKind.EDGE_ALWAYS_ON:
            return [PoweredOn(name) for name in chosen]
        started: list[PoweredOn] = []
        for name in chosen:
            board = self._board(name)
            if board.mac is None:
                log.warning("edge board %s has no MAC address: it cannot be woken", name)
                continue
            send_magic_packet(board.mac, board.wol_broadcast, board.wol_port)
            log.info(
                "sent Wake-on-LAN to %s (%s via %s:%d)", name, board.mac, board.wol_broadcast, board.wol_port
            )
            started.append(PoweredOn(name))
        return started

    def power_off(self, group: NodeGroup, nodes: Sequence[str]) -> None:
        if group.kind is GroupKind.EDGE_ALWAYS_ON:
            return
        failures: list[str] = []
        for name in nodes:
            try:
                self._shutdown(self._board(name))
            except TransientError as err:
                failures.append(str(err))
        if failures:
            raise TransientError("; ".join(failures))

    def nodes(self, group: NodeGroup) -> list[PoweredOn]:
        return [PoweredOn(host) for host in group.hosts]

    def _shutdown(self, board: EdgeBoard) -> None:
        connect_timeout = max(1, int(self._ssh_timeout // 3))
        argv = [
            "ssh",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={connect_timeout}",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", "ControlMaster=no",
            "-p", str(board.ssh_port),
        ]  # fmt: skip
        if board.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={board.known_hosts}"]
        if board.ssh_key:
            argv += ["-i", board.ssh_key, "-o", "IdentitiesOnly=yes"]
        # One argument: ssh hands it to the board's shell as written.
        argv += [f"{board.ssh_user}@{board.address}", board.shutdown_command]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self._ssh_timeout, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise TransientError(
                f"ssh shutdown of {board.name} timed out after {self._ssh_timeout:.0f}s"
            ) from err
        if done.returncode == 0:
            log.info("shut down edge board %s", board.name)
            return
        stderr = done.stderr.strip()
        if done.returncode == 255 and any(marker in stderr.lower() for marker in _DROPPED_BY_SHUTDOWN):
            log.info("edge board %s dropped the SSH session while shutting down", board.name)
            return
        raise TransientError(f"ssh shutdown of {board.name} failed (exit {done.returncode}): {stderr[-300:]}")
