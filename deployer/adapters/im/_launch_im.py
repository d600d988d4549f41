"""Process entry point of the embedded local IM: ``python -m deployer.adapters.im._launch_im ...``.

Started (never imported) by ``deployer.adapters.im.local_server``. The IM reads its settings only from
fixed files, and several of them are bound when its modules are imported (the REST host/port in
``IM.im_service``, ``WAIT_PUBLIC_IP_TIMEOUT`` as a default argument in ``IM.ConfManager``), so this
launcher sets ``IM.config.Config`` first and imports the service afterwards.

Three guards make this IM safe to run on any machine (see shared/notes/im.md, SAFETY):
- contextualization is off for every infrastructure, whatever its template says, so the IM never
  tries to SSH into a Dummy VM's fake address nor runs Ansible (which would fetch roles);
- the process may only open sockets to loopback addresses and only resolve local names, so even a
  mistake can never reach another host or download types from the internet;
- TOSCA validation stays on: the IM's ``Tosca.deserialize`` (used when it loads stored
  infrastructures, e.g. after a restart) switches tosca-parser's ``verify_template`` off for the whole
  process and never back, after which invalid templates are accepted;
- the Dummy connector also gives a simulated public address to VMs that ask for a public network, so
  the IM's wait for public IPs succeeds and the deployment stays ``configured`` (without this the IM
  flips it to ``unconfigured`` after ``WAIT_PUBLIC_IP_TIMEOUT``).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

# RFC 5737 TEST-NET-2: documentation addresses, never routed, never contacted (see the socket guard).
SIMULATED_PUBLIC_NET = "198.51.100."


def _is_loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return str(host) == "localhost"


def install_network_guard() -> None:
    """Refuse every connection and name lookup that would leave the machine."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(
                errno.ENETUNREACH, f"local IM: outbound connection to {address[0]} blocked by deployer"
            )

    def guarded_connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        original_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return original_connect_ex(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host) and not _is_ip_literal(host):
            raise socket.gaierror(socket.EAI_NONAME, f"local IM: name lookup of {host} blocked by deployer")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo


def _is_ip_literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host))
    except ValueError:
        return False
    return True


def disable_contextualization() -> None:
    """Make every infrastructure take the IM's own "contextualize ()" path: only wait for the IPs."""
    from IM.InfrastructureInfo import InfrastructureInfo

    original = InfrastructureInfo.Contextualize

    def contextualize(self: Any, auth: Any, vm_list: Any = None) -> Any:
        # An empty item map is what the RADL "contextualize ()" parses to: contextualization disabled.
        self.radl.contextualize.items = {}
        return original(self, auth, vm_list)

    InfrastructureInfo.Contextualize = contextualize


def keep_tosca_validation() -> None:
    """Confine the IM's "verify=False" parse to that one parse (see the module docstring)."""
    from IM.tosca.Tosca import Tosca
    from toscaparser.tosca_template import ToscaTemplate

    original_init = Tosca.__init__
    verifier = vars(ToscaTemplate)["verify_template"]
    # Parses run in the REST server's worker threads: one at a time, so that an unverified
    # deserialisation can never overlap with the validation of a new template.
    parse_lock = threading.Lock()

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        with parse_lock:
            try:
                original_init(self, *args, **kwargs)
            finally:
                ToscaTemplate.verify_template = verifier

    Tosca.__init__ = init


def simulate_public_ips() -> None:
    """Give Dummy VMs an address on each public network they are connected to."""
    from IM.connectors.Dummy import DummyCloudConnector

    original_launch = DummyCloudConnector.launch

    def launch(self: Any, inf: Any, radl: Any, requested_radl: Any, num_vm: int, auth_data: Any) -> Any:
        results = original_launch(self, inf, radl, requested_radl, num_vm, auth_data)
        for ok, vm in results:
            if not ok:
                continue
            system = vm.info.systems[0]
            for index in range(system.getNumNetworkIfaces()):
                net_id = system.getValue(f"net_interface.{index}.connection")
                network = vm.info.get_network_by_id(net_id) if net_id else None
                if network is not None and network.isPublic():
                    # The IM's own VM numbers are unique; the cloud ids of Dummy VMs are not.
                    system.setValue(
                        f"net_interface.{index}.ip", f"{SIMULATED_PUBLIC_NET}{vm.im_id % 250 + 1}"
                    )
        return results

    DummyCloudConnector.launch = launch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded local IM (loopback only).")
    parser.add_argument("--dir", required=True, type=Path, help="data, logs and working directory")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--public-ip-timeout", type=int, default=90, help="WAIT_PUBLIC_IP_TIMEOUT seconds")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    root: Path = args.dir.resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    os.chdir(root)  # the IM writes tosca_cache.sqlite into its working directory

    from IM.config import Config

    Config.DATA_DB = f"sqlite:///{root / 'inf.dat'}"
    Config.REST_ADDRESS = "127.0.0.1"
    Config.REST_PORT = args.port
    Config.LOG_FILE = str(root / "logs" / "im.log")
    Config.LOG_LEVEL = args.log_level
    Config.WAIT_PUBLIC_IP_TIMEOUT = args.public_ip_timeout
    Config.CONFMAMAGER_CHECK_STATE_INTERVAL = 1
    Config.REST_SSL = False

    install_network_guard()
    disable_contextualization()
    keep_tosca_validation()
    simulate_public_ips()

    from IM import im_service

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, im_service.signal_int_handler)
    im_service.config_logging()
    im_service.launch_daemon()


if __name__ == "__main__":
    main()
