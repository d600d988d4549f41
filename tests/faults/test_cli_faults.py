"""The CLI under faults, as a user meets them: bad answers from the IM or a gateway, a second writer on the
same deployment, and SIGKILL of the CLI mid-operation followed by the same command again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.paths import resolve_paths
from tests.faults.proxy import Fault
from tests.faults.scenarios import LANDING_MARGIN_S, READ_S, SHORT_HOLD_S
from tests.im.conftest import eventually

pytestmark = [pytest.mark.im, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


class Deployer:
    """The real ``deployer`` CLI in a subprocess, talking to the IM through the fault proxy."""

    def __init__(self, home: Path, proxy_url: str, auth_file: Path) -> None:
        self.home = home
        self.proxy_url = proxy_url
        self.auth_file = auth_file
        self.env = {
            **os.environ,
            "DEPLOYER_HOME": str(home),
            "DEPLOYER_IM_TIMEOUT": f"2,{READ_S}",
            "DEPLOYER_IM_LANDING_MARGIN": str(LANDING_MARGIN_S),
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "deployer", *args]

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, capture_output=True, text=True, timeout=timeout)

    def create_args(self, name: str, *extra: str) -> list[str]:
        return [
            "create", "--cloud", "local", "--name", name, "--im-url", self.proxy_url,
            "--auth-file", str(self.auth_file), *extra,
        ]  # fmt: skip

    @property
    def store(self) -> DeploymentStore:
        return DeploymentStore(resolve_paths({"DEPLOYER_HOME": str(self.home)}).state_db)


@pytest.fixture
def deployer(deployer_home, fault_proxy, im_user) -> Deployer:
    return Deployer(deployer_home, fault_proxy.url, im_user.auth_file)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def _ids(local_im, im_user) -> list[str]:
    with IMClient(local_im.url, im_user.entries) as im:
        return im.list_ids()


def _group_vms(local_im, im_user, inf_id: str, node: str = "wn_vm") -> int:
    with IMClient(local_im.url, im_user.entries) as im:
        return sum(1 for vm in im.vm_ids(inf_id) if im.vm_info(inf_id, vm).get("id") == node)


# ---- bad answers: one line naming the IM URL and the status, exit 3, never a traceback -------------------


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (Fault("html", status=502, times=-1), "answered 502 with an HTML page ('502 Bad Gateway')"),
        (Fault("not_json", times=-1), "answered 200 with a body that is not JSON"),
        (Fault("bad_shape", times=-1), "answered 200 with JSON of an unexpected shape"),
        (Fault("truncate", times=-1), "the answer was cut off"),
        (Fault("status", status=503, times=-1), "answered 503"),
    ],
    ids=lambda v: getattr(v, "kind", None) and f"{v.kind}-{v.status}",
)
def test_bad_answers_are_one_clear_line(deployer, fault_proxy, fault, says):
    created = deployer.run(*deployer.create_args("bad", "--no-wait", "--json"))
    assert created.returncode == 0, created.stderr
    fault.path = r"^/infrastructures"  # every IM call of the read commands below
    fault_proxy.add(fault)
    for command in (["status", "bad"], ["outputs", "bad"], ["scale", "bad", "--group", "wn", "--count", "2"]):
        result = deployer.run(*command, timeout=90)
        assert result.returncode == 3, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and says in errors[0] and deployer.proxy_url in errors[0], result.stderr
        assert "Traceback" not in result.stderr
    listed = deployer.run("list", "--json")  # one row per IM: the failure is that IM's drift
    assert listed.returncode == 0 and says in json.loads(listed.stdout)[0]["drift"]
    fault_proxy.clear()
    assert deployer.run("destroy", "bad", "--yes").returncode == 0


# ---- one writer per deployment ----------------------------------------------------------------------------


def test_a_second_writer_fails_fast_until_the_holder_dies_and_wait_lock_waits(deployer, local_im, im_user):
    assert deployer.run(*deployer.create_args("one", "--no-wait")).returncode == 0
    assert deployer.run(*deployer.create_args("two", "--no-wait")).returncode == 0
    locks = resolve_paths({"DEPLOYER_HOME": str(deployer.home)}).locks_dir
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; "
            "from deployer.adapters.state.locks import deployment_lock\n"
            f"with deployment_lock(Path({str(locks)!r}), 'one', command='scale one'):\n"
            "    print('held', flush=True); time.sleep(120)"
        )],
        env=deployer.env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = deployer.run("scale", "one", "--group", "wn", "--count", "2")
        assert busy.returncode == 75
        assert f"deployment 'one' is busy: `deployer scale one` (pid {holder.pid}" in busy.stderr
        assert "--wait-lock" in busy.stderr
        other = deployer.run("scale", "two", "--group", "wn", "--count", "2", "--no-wait")
        assert other.returncode == 0, other.stderr  # the lock is per deployment
        assert deployer.run("status", "one").returncode == 0  # readers never wait
        waiting = deployer.start("scale", "one", "--group", "wn", "--count", "2", "--wait-lock", "--no-wait")
        time.sleep(1.5)
        assert waiting.poll() is None, "it waits while the lock is held"
        _kill(holder)  # a killed holder's lock is recovered by the kernel
        _, err = waiting.communicate(timeout=90)
        assert waiting.returncode == 0, err
    finally:
        if holder.poll() is None:
            _kill(holder)
    inf_id = deployer.store.get("one").infrastructure_id
    assert _group_vms(local_im, im_user, inf_id) == 2
    assert _group_vms(local_im, im_user, deployer.store.get("two").infrastructure_id) == 2
    for name in ("one", "two"):
        assert deployer.run("destroy", name, "--yes").returncode == 0


# ---- SIGKILL at each step, then the same command again ----------------------------------------------------


def test_killed_while_the_create_request_is_in_flight_then_rerun_adopts_it(
    deployer, fault_proxy, local_im, im_user
):
    fault_proxy.add(Fault("hold", method="POST", path=r"^/infrastructures\?async", seconds=SHORT_HOLD_S))
    proc = deployer.start(*deployer.create_args("k-create", "--no-wait"))
    fault_proxy.wait_for("POST", r"^/infrastructures\?async")
    _kill(proc)
    assert deployer.store.get("k-create").infrastructure_id is None  # the record survived the kill
    again = deployer.run(*deployer.create_args("k-create", "--json"))
    assert again.returncode == 0, again.stderr
    assert "resuming infrastructure" in again.stderr
    created = json.loads(again.stdout)
    assert created["state"] == "configured"
    assert _ids(local_im, im_user) == [created["infrastructure_id"]]
    assert len(fault_proxy.requests("POST", r"^/infrastructures\?async")) == 1
    assert deployer.run("destroy", "k-create", "--yes").returncode == 0
    assert _ids(local_im, im_user) == []


def test_killed_while_following_then_rerun_resumes(deployer, fault_proxy, local_im, im_user):
    fault_proxy.add(Fault("stall", method="GET", path=r"/state$", seconds=10))
    proc = deployer.start(*deployer.create_args("k-follow"))
    fault_proxy.wait_for("GET", r"/state$")
    _kill(proc)
    fault_proxy.clear()
    again = deployer.run(*deployer.create_args("k-follow", "--json"))
    assert again.returncode == 0, again.stderr
    assert _ids(local_im, im_user) == [json.loads(again.stdout)["infrastructure_id"]]
    assert deployer.run("destroy", "k-follow", "--yes").returncode == 0


def test_killed_while_a_scale_up_is_in_flight_then_rerun_adds_nothing_twice(
    deployer, fault_proxy, local_im, im_user
):
    assert deployer.run(*deployer.create_args("k-scale", "--workers", "1")).returncode == 0
    inf_id = deployer.store.get("k-scale").infrastructure_id
    add = rf"^/infrastructures/{inf_id}$"
    fault_proxy.add(Fault("hold", method="POST", path=add, seconds=SHORT_HOLD_S))
    proc = deployer.start("scale", "k-scale", "--group", "wn", "--count", "3", "--no-wait")
    fault_proxy.wait_for("POST", add)
    _kill(proc)
    again = deployer.run("scale", "k-scale", "--group", "wn", "--count", "3", "--no-wait")
    assert again.returncode == 0, again.stderr
    assert "waiting" in again.stderr  # for the unanswered add to land (or not) before counting
    assert _group_vms(local_im, im_user, inf_id) == 3
    status = deployer.run("status", "k-scale", "--json")
    assert json.loads(status.stdout)["pending_change"] is None
    assert deployer.run("destroy", "k-scale", "--yes").returncode == 0


def test_killed_while_destroying_then_rerun_converges(deployer, fault_proxy, local_im, im_user):
    assert deployer.run(*deployer.create_args("k-destroy")).returncode == 0
    inf_id = deployer.store.get("k-destroy").infrastructure_id
    gone = rf"^/infrastructures/{inf_id}$"
    fault_proxy.add(Fault("hold", method="DELETE", path=gone, seconds=SHORT_HOLD_S))
    proc = deployer.start("destroy", "k-destroy", "--yes")
    fault_proxy.wait_for("DELETE", gone)
    _kill(proc)
    assert deployer.store.get("k-destroy").status == "destroying"  # not forgotten before verified
    again = deployer.run("destroy", "k-destroy", "--yes")
    assert again.returncode == 0, again.stderr
    assert deployer.store.find("k-destroy") is None
    eventually(lambda: _ids(local_im, im_user), [])
