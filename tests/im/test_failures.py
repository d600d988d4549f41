"""Failure paths against the real IM: refused template, wrong auth, failed infrastructure, IM down, timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from deployer.adapters.im.auth import AuthEntry, write_auth_file
from deployer.adapters.im.client import IMClient
from deployer.adapters.im.local_server import free_port
from deployer.adapters.state.store import STATUS_SUBMITTING, DeploymentRecord, DeploymentStore
from deployer.errors import RemoteError
from deployer.lifecycle.deploy import follow, submit
from deployer.paths import resolve_paths
from tests.im.templates import new_tag, small_tosca

pytestmark = pytest.mark.im


def records():
    return DeploymentStore(resolve_paths().state_db).all()


def test_refused_template_leaves_no_record(cli, im_user, local_im):
    # Published (remote) types: valid offline, but this IM may not fetch anything from the internet.
    result = cli(*cli.create_args("refused", "--set", "types=remote"), code=3)
    assert "IM refused the template:" in result.stderr
    assert "blocked by deployer" in result.stderr
    assert records() == []
    with IMClient(local_im.url, im_user.entries) as client:
        assert client.list_ids() == []


def test_refused_template_at_the_use_case_level(im_user, local_im, deployer_home):
    store = DeploymentStore(resolve_paths().state_db)
    broken = small_tosca(new_tag()).replace("num_cpus: 1", "num_cpuz: 1", 1)
    with (
        IMClient(local_im.url, im_user.entries) as client,
        pytest.raises(RemoteError, match="refused the template"),
    ):
        submit(
            store,
            client,
            name="bad",
            cloud="local",
            tosca=broken,
            tosca_redacted=broken,
            deployment_tag=new_tag(),
            spec_hash="x",
        )
    assert store.all() == []


def test_missing_im_credentials_line(cli, tmp_path):
    auth = tmp_path / "no-im-line.dat"
    write_auth_file(auth, [AuthEntry("Dummy", "local", {})])
    result = cli(
        "create",
        "--cloud",
        "local",
        "--name",
        "noauth",
        "--im-url",
        cli.url,
        "--auth-file",
        str(auth),
        code=3,
    )
    assert "type = InfrastructureManager" in result.stderr
    assert records() == []


def test_wrong_password_on_an_existing_deployment(cli, tmp_path, im_user):
    cli(*cli.create_args("mine", "--no-wait"))
    wrong = tmp_path / "wrong.dat"
    fields = {**im_user.entries[0].fields, "password": "not-the-password"}
    write_auth_file(wrong, [AuthEntry("InfrastructureManager", None, fields)])
    result = cli("status", "mine", "--auth-file", str(wrong), code=3)
    assert "403" in result.stderr and "username/password" in result.stderr
    assert "not-the-password" not in result.stderr
    cli("destroy", "mine", "--yes")


def test_failed_infrastructure_shows_the_log_tail(cli, tmp_path, im_user):
    # No cloud line: the IM accepts the template, then fails to place any VM.
    auth = tmp_path / "no-cloud.dat"
    write_auth_file(auth, [im_user.entries[0]])
    result = cli(
        "create",
        "--cloud",
        "local",
        "--name",
        "nocloud",
        "--im-url",
        cli.url,
        "--auth-file",
        str(auth),
        code=3,
    )
    assert "is failed" in result.stderr
    with IMClient(cli.url, im_user.entries) as client:
        last_log_line = client.contmsg(records()[0].infrastructure_id).strip().splitlines()[-1]
    assert "provider available" in last_log_line
    assert last_log_line in result.stderr  # the tail of the IM's contextualization log
    assert "deployer destroy nocloud" in result.stderr
    assert records()[0].status == "failed"
    cli("destroy", "nocloud", "--yes")


def test_im_down_mid_follow_then_status_recovers(cli, im_user, local_im):
    cli(*cli.create_args("bumpy", "--no-wait"))
    inf_id = records()[0].infrastructure_id
    unreachable: list[RemoteError] = []
    outcome: list[object] = []
    client = IMClient(local_im.url, im_user.entries, retries=1)

    def follower() -> None:
        try:
            outcome.append(
                follow(client, inf_id, timeout=60, poll_interval=0.2, on_unreachable=unreachable.append)
            )
        except Exception as err:  # surfaced by the assertions below
            outcome.append(err)

    local_im.stop()
    try:
        thread = threading.Thread(target=follower)
        thread.start()
        down = cli("status", "bumpy", code=3)
        assert "did not answer" in down.stderr
        timed_out = cli("status", "bumpy", "--watch", "--timeout", "1", code=4)
        assert "after 1s" in timed_out.stderr and "deployer destroy bumpy" in timed_out.stderr
    finally:
        local_im.start()
    # Loading stored infrastructures after the restart must not switch template validation off
    # (an IM bug that the local launcher contains).
    broken = small_tosca(new_tag()).replace("num_cpus: 1", "num_cpuz: 1", 1)
    with IMClient(local_im.url, im_user.entries) as check:
        check.state(inf_id)  # makes the IM load (deserialise) the stored infrastructure
        with pytest.raises(RemoteError, match="refused the template"):
            check.create(broken)
    thread.join(timeout=60)
    client.close()
    assert not thread.is_alive()
    assert unreachable, "the follower saw the IM down"
    assert getattr(outcome[0], "state", outcome[0]) == "configured"
    assert cli.json("status", "bumpy")["state"] == "configured"
    cli("destroy", "bumpy", "--yes")


def test_interrupted_submission_is_recovered_by_its_tag(cli, im_user, local_im):
    store = DeploymentStore(resolve_paths().state_db)

    def submitting(name: str, tag: str, *, age: float) -> None:
        record = DeploymentRecord(
            name=name,
            cloud="local",
            im_url=local_im.url,
            infrastructure_id=None,
            deployment_tag=tag,
            spec_hash="x",
            tosca_redacted="x",
            status=STATUS_SUBMITTING,
            auth_file=str(im_user.auth_file),
        )
        store.add(record, now=time.time() - age)

    # "crashed": the create reached the IM but deployer died before recording the id.
    found_tag = new_tag()
    submitting("crashed", found_tag, age=0)
    with IMClient(local_im.url, im_user.entries) as client:
        inf_id = client.create(small_tosca(found_tag))
    assert cli.json("status", "crashed")["infrastructure_id"] == inf_id
    assert store.get("crashed").infrastructure_id == inf_id
    cli("destroy", "crashed", "--yes")
    # "never": nothing carries its tag. While young it may be a create still in flight elsewhere...
    submitting("young", new_tag(), age=0)
    assert "still being submitted" in cli("status", "young", code=3).stderr
    assert store.find("young") is not None
    # ...once old it is an orphan: forgotten, with a clear message.
    submitting("never", new_tag(), age=600)
    assert "never created" in cli("status", "never", code=3).stderr
    assert store.find("never") is None


def test_create_again_resumes_the_same_spec_and_refuses_another(cli, im_user, local_im):
    first = cli.json(*cli.create_args("taken", "--no-wait"))
    again = cli(*cli.create_args("taken", "--no-wait"))  # same spec: resumes, no second infrastructure
    assert f"resuming infrastructure {first['infrastructure_id']}" in again.stderr
    other = cli(*cli.create_args("taken", "--no-wait", "--workers", "3"), code=1)
    assert "already exists with another spec" in other.stderr
    with IMClient(local_im.url, im_user.entries) as client:
        assert client.list_ids() == [first["infrastructure_id"]]
    cli("destroy", "taken", "--yes")


def test_ctrl_c_while_following_leaves_it_running_and_says_how_to_resume(deployer_home, tmp_path):
    auth = tmp_path / "auth.dat"
    write_auth_file(
        auth, [AuthEntry("InfrastructureManager", None, {"username": "u", "password": "pw-123456"})]
    )
    DeploymentStore(resolve_paths().state_db).add(
        DeploymentRecord(
            name="busy",
            cloud="local",
            im_url=f"http://127.0.0.1:{free_port()}",  # nobody answers: the watch keeps polling
            infrastructure_id="inf-busy",
            deployment_tag=new_tag(),
            spec_hash="x",
            tosca_redacted="x",
            status="running",
            auth_file=str(auth),
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "deployer", "status", "busy", "--watch", "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEPLOYER_HOME": str(deployer_home)},
    )
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "retrying" not in line and time.monotonic() < deadline:  # it is following now
            line = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130
    assert "keeps running" in err
    assert "deployer status busy --watch" in err and "deployer destroy busy" in err
