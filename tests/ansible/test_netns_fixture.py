"""The namespace-host fixture itself: isolated hosts over real SSH, and a teardown that leaves nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests.fixtures.netns import NetnsLab

pytestmark = pytest.mark.netns


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def test_hosts_are_isolated_reachable_and_torn_down() -> None:
    with NetnsLab() as lab:
        first, second = lab.add_hosts(2)
        (asleep,) = lab.add_hosts(1, start=False)
        for host in (first, second):
            done = host.ssh("hostname")
            assert (done.returncode, done.stdout.strip()) == (0, host.name), done.stderr
        # Private /etc: a write on one host is invisible on the other and on this machine.
        assert first.run("echo only-here > /etc/deployer-netns-probe").returncode == 0
        assert first.path("/etc/deployer-netns-probe").read_text() == "only-here\n"
        assert second.run("cat /etc/deployer-netns-probe").returncode != 0
        assert subprocess.run(["test", "-e", "/etc/deployer-netns-probe"], check=False).returncode != 0
        # A host without sshd refuses connections until it is started (a board that is off).
        assert asleep.ssh("true").returncode == 255
        asleep.start_sshd()
        assert asleep.ssh("hostname").stdout.strip() == asleep.name
        asleep.stop_sshd()
        assert asleep.ssh("true").returncode == 255
        names = [h.netns for h in lab.hosts]
        bridge = lab.bridge
        assert all(name in _ip("netns", "list") for name in names)
    listed = _ip("netns", "list")
    assert not any(name in listed for name in names)
    assert bridge not in _ip("link")
    assert not lab.workdir.exists()
