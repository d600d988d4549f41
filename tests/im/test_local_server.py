"""The embedded local IM: public-IP trap, loopback-only guard, start/stop/status, ``deployer local``."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from deployer.adapters.im.client import IMClient
from deployer.lifecycle.deploy import follow
from tests.fixtures.im_server import TEST_PUBLIC_IP_TIMEOUT
from tests.im.conftest import eventually
from tests.im.templates import new_tag, small_tosca

pytestmark = pytest.mark.im


def test_public_ip_request_stays_configured_past_the_timeout(local_im, im_user):
    tag = new_tag()
    with IMClient(local_im.url, im_user.entries) as client:
        inf_id = client.create(small_tosca(tag, public_front=True))
        try:
            follow(client, inf_id, timeout=30, poll_interval=0.2)
            # The IM re-checks every second (launcher setting); give it the timeout plus two checks.
            time.sleep(TEST_PUBLIC_IP_TIMEOUT + 2.5)
            state = client.state(inf_id)
            assert state.state == "configured", client.contmsg(inf_id)
            assert set(state.vm_states.values()) == {"configured"}
            public_ip = client.outputs(inf_id)["front_public_ip"]
            assert public_ip.startswith("198.51.100.")  # simulated, documentation-only range
            assert "requested IPs" not in client.contmsg(inf_id)
        finally:
            client.destroy(inf_id)


GUARD_PROBE = """
import errno, socket, sys
from deployer.adapters.im._launch_im import install_network_guard
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
install_network_guard()
socket.create_connection(listener.getsockname(), timeout=2).close()  # loopback still works
for target in (("10.0.0.1", 22), ("198.51.100.7", 22)):
    try:
        socket.create_connection(target, timeout=2)
    except OSError as err:
        assert err.errno == errno.ENETUNREACH and "blocked by deployer" in str(err), err
    else:
        sys.exit("connected to " + target[0])
try:
    socket.getaddrinfo("raw.githubusercontent.com", 443)
except socket.gaierror as err:
    assert "blocked by deployer" in str(err)
else:
    sys.exit("resolved a remote name")
print("guarded")
"""


def test_network_guard_allows_only_loopback():
    result = subprocess.run([sys.executable, "-c", GUARD_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "guarded"


def test_create_cloud_local_starts_the_local_im_and_local_commands(cli, deployer_home):
    assert cli.json("local", "status")["running"] is False
    try:
        created = cli.json("create", "--cloud", "local", "--name", "auto", "--timeout", "60")
        assert created["state"] == "configured"
        status = cli.json("local", "status")
        assert status["running"] and status["answering"] and status["url"].startswith("http://127.0.0.1:")
        assert cli.json("local", "start")["already_running"] is True
        # Generated credentials are private; the IM's data and working directory live together.
        assert (deployer_home / "local-im" / "auth.dat").stat().st_mode & 0o777 == 0o600
        assert (deployer_home / "local-im" / "inf.dat").exists()
        assert (deployer_home / "local-im" / "tosca_cache.sqlite").exists()
        assert cli.json("list")[0]["name"] == "auto"
        cli("destroy", "auto", "--yes")
        eventually(lambda: cli.json("list"), [])
    finally:
        cli("local", "stop")
    assert cli.json("local", "status")["running"] is False
    assert "was not running" in cli("local", "stop").stderr


RADL_WITH_RECIPES = """
network publica (outbound = 'yes')
system front (
    cpu.count >= 1 and memory.size >= 512m and
    net_interface.0.connection = 'publica' and disk.0.os.name = 'linux'
)
configure front (
@begin
- tasks:
  - shell: echo this must never run
@end
)
deploy front 1
"""


def test_contextualization_never_runs_even_when_the_template_asks(local_im, im_user):
    import requests

    from deployer.adapters.im.auth import auth_header
    from deployer.adapters.im.client import infrastructure_id_from_uri

    response = requests.post(
        f"{local_im.url}/infrastructures",
        data=RADL_WITH_RECIPES,
        headers={
            "Authorization": auth_header(im_user.entries),
            "Content-Type": "text/plain",
            "Accept": "application/json",
        },
        timeout=30,
    )
    response.raise_for_status()
    inf_id = infrastructure_id_from_uri(response.json()["uri"])
    with IMClient(local_im.url, im_user.entries) as client:
        try:
            assert follow(client, inf_id, timeout=30, poll_interval=0.2).state == "configured"
            assert "Contextualization disabled" in client.contmsg(inf_id)
        finally:
            client.destroy(inf_id)
