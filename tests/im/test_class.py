"""Teaching classes against the real IM: 5 teams, an injected failure, an interrupted run, destroy.

The IM is reached through a loopback proxy (tests/daemon/im_proxy.py) that can fail or hold requests,
so the faults happen at the IM's HTTP interface, not inside deployer.
"""

from __future__ import annotations

import csv
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.classes import ClassStore
from deployer.adapters.state.secrets import SecretStore
from deployer.adapters.state.store import DeploymentStore
from deployer.lifecycle.classroom import TeamResult, roster_csv, roster_markdown
from deployer.paths import resolve_paths
from tests.daemon.im_proxy import IMProxy

pytestmark = pytest.mark.im

TEAMS = 5
CREATE = ("POST", "/infrastructures")


@pytest.fixture(autouse=True)
def short_landing_window(monkeypatch):
    """A create whose answer is lost is waited for until it can no longer land: seconds here, not 75."""
    monkeypatch.setenv("DEPLOYER_IM_TIMEOUT", "5,5")
    monkeypatch.setenv("DEPLOYER_IM_LANDING_MARGIN", "2")


@pytest.fixture
def proxy(local_im):
    running = IMProxy(local_im.url).start()
    yield running
    running.stop()


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "course.yaml"
    path.write_text("cloud: local\nelasticity:\n  enabled: false\n")
    return path


def class_args(cli, proxy, spec_file, roster_dir, *extra):
    return [
        "class",
        "create",
        str(spec_file),
        "--teams",
        str(TEAMS),
        "--prefix",
        "lab",
        "--im-url",
        proxy.url,
        "--auth-file",
        str(cli.auth_file),
        "--roster-dir",
        str(roster_dir),
        "--timeout",
        "60",
        *extra,
    ]


def im_ids(local_im, im_user) -> set[str]:
    with IMClient(local_im.url, im_user.entries) as client:
        return set(client.list_ids())


def recorded_ids() -> set[str]:
    return {
        r.infrastructure_id for r in DeploymentStore(resolve_paths().state_db).all() if r.infrastructure_id
    }


def test_class_create_retries_a_failure_then_status_and_destroy_only_the_class(
    cli, proxy, spec_file, tmp_path, local_im, im_user
):
    # Someone else's cluster whose name starts like the class's: class destroy must never touch it.
    outsider = cli.json(*cli.create_args("lab-outside"))["infrastructure_id"]
    proxy.fail_next(*CREATE, 429)  # a gateway's rate limit: refused, nothing created, so the class retries

    created = cli.json(*class_args(cli, proxy, spec_file, tmp_path, "--parallel", "3"))

    teams = created["teams"]
    assert [t["name"] for t in teams] == [f"lab-{n:02d}" for n in range(1, TEAMS + 1)]
    assert {t["status"] for t in teams} == {"ready"}
    assert sorted(t["attempts"] for t in teams) == [1, 1, 1, 1, 2]  # exactly one team was retried
    creates = proxy.calls(*CREATE)
    assert [c.status for c in creates].count(429) == 1 and len(creates) == TEAMS + 1
    class_ids = {t["infrastructure_id"] for t in teams}
    assert im_ids(local_im, im_user) == class_ids | {outsider}

    for roster in (tmp_path / "lab-roster.csv", tmp_path / "lab-roster.md"):
        assert stat.S_IMODE(roster.stat().st_mode) == 0o600
    rows = list(csv.DictReader((tmp_path / "lab-roster.csv").open()))
    assert [r["cluster"] for r in rows] == [t["name"] for t in teams]
    secrets = SecretStore(resolve_paths())
    for row in rows:
        assert row["kubernetes_api_endpoint"] == "https://10.0.0.1:6443"
        assert row["kubernetes.admin_token"] == secrets.load(row["cluster"])["kubernetes.admin_token"]
    assert len({r["oscar.oscar_password"] for r in rows}) == TEAMS  # each team has its own credentials
    markdown = (tmp_path / "lab-roster.md").read_text()
    assert all(r["oscar.minio_password"] in markdown for r in rows)

    status = cli.json("class", "status", "lab")
    assert [(t["name"], t["state"]) for t in status["teams"]] == [(t["name"], "configured") for t in teams]
    assert not any(r["kubernetes.admin_token"] in cli("class", "status", "lab").stdout for r in rows)

    proxy.fail_with = 503  # the IM is down: nothing is forgotten, everything is reported as left over
    blocked = cli("class", "destroy", "lab", "--yes", code=3)
    assert f"{TEAMS} left over" in blocked.stderr and "run the command again" in blocked.stderr
    assert len(ClassStore(resolve_paths().state_db).members("lab")) == TEAMS
    proxy.fail_with = None

    destroyed = cli("class", "destroy", "lab", "--yes")
    assert f"{TEAMS} destroyed" in destroyed.stderr and "0 left over" in destroyed.stderr
    assert im_ids(local_im, im_user) == {outsider}  # class destroy checked the IM's own listing
    assert [r.name for r in DeploymentStore(resolve_paths().state_db).all()] == ["lab-outside"]
    assert ClassStore(resolve_paths().state_db).find("lab") is None
    again = cli("class", "destroy", "lab", "--yes")
    assert "nothing to destroy" in again.stderr
    cli("destroy", "lab-outside", "--yes")


def test_a_team_that_keeps_failing_is_reported_without_stopping_the_others(
    cli, proxy, spec_file, tmp_path, local_im, im_user
):
    lock = tmp_path / "course.lock.yaml"  # a class from a lock file, as next term's would be
    cli("lock", str(spec_file), "-o", str(lock))
    proxy.fail_next(*CREATE, 429, times=2)  # team 1 (parallel 1): its create and its one retry
    failed = cli(*class_args(cli, proxy, lock, tmp_path, "--parallel", "1", "--retries", "1"), code=3)
    assert "1 of 5 clusters failed (lab-01)" in failed.stderr
    rows = {r["cluster"]: r for r in csv.DictReader((tmp_path / "lab-roster.csv").open())}
    assert rows["lab-01"]["status"] == "failed" and "429" in rows["lab-01"]["error"]
    assert rows["lab-01"]["kubernetes.admin_token"] == ""
    assert {rows[f"lab-{n:02d}"]["status"] for n in range(2, TEAMS + 1)} == {"ready"}

    rerun = cli.json(*class_args(cli, proxy, lock, tmp_path))  # retries only the failed team
    assert {t["status"] for t in rerun["teams"]} == {"ready"}
    assert len(proxy.calls(*CREATE)) == 2 + TEAMS  # two refused, then one create per team
    cli("class", "destroy", "lab", "--yes")
    assert im_ids(local_im, im_user) == set()


def test_ctrl_c_records_everything_and_a_rerun_creates_only_what_is_missing(
    cli, proxy, spec_file, tmp_path, local_im, im_user, deployer_home
):
    proxy.delay[CREATE] = 1.0  # a slow IM: the interrupt lands while a create request is in flight
    args = class_args(cli, proxy, spec_file, tmp_path, "--parallel", "2")
    command = [sys.executable, "-m", "deployer", *args]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEPLOYER_HOME": str(deployer_home)},
    )
    try:
        deadline = time.monotonic() + 60
        while len(proxy.calls(*CREATE)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the next two creates are now held by the proxy
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "again to resume" in err
    before = im_ids(local_im, im_user)
    assert 0 < len(before) < TEAMS
    assert before <= recorded_ids()  # nothing exists in the IM that deployer does not record

    proxy.delay.clear()
    resumed = cli.json(*class_args(cli, proxy, spec_file, tmp_path))
    assert {t["status"] for t in resumed["teams"]} == {"ready"}
    after = im_ids(local_im, im_user)
    assert len(after) == TEAMS and before <= after  # the earlier clusters were kept, not recreated
    assert len(proxy.calls(*CREATE)) == TEAMS  # one create per team over both runs

    cli("class", "destroy", "lab", "--yes")
    assert im_ids(local_im, im_user) == set()


def test_roster_values_from_a_hostile_im_stay_text():
    team = TeamResult(
        1,
        "lab-01",
        "ready",
        1,
        outputs={"kubernetes_api_endpoint": '=HYPERLINK("http://evil")', "oscar_endpoint": "a|b\nc"},
        credentials={"kubernetes.admin_token": "tok"},
    )
    row = next(csv.DictReader(roster_csv([team]).splitlines()))
    assert (
        row["kubernetes_api_endpoint"] == '\'=HYPERLINK("http://evil")'
        and row["kubernetes.admin_token"] == "tok"
    )
    table_row = roster_markdown("lab", [team]).splitlines()[-1]
    assert "a\\|b c" in table_row and table_row.count(" | ") == len(row) - 1


def test_destroy_checks_the_ims_listing_and_destroys_again_what_it_still_lists(
    cli, proxy, spec_file, tmp_path, local_im, im_user
):
    from deployer.lifecycle.classroom import destroy_class

    created = cli.json(*class_args(cli, proxy, spec_file, tmp_path, "--teams", "2"))["teams"]
    lying = f"/infrastructures/{created[0]['infrastructure_id']}"
    events: list[str] = []

    def on_event(team, name, message):
        events.append(f"{name}: {message}")

    # The IM answers the DELETE with 200 but keeps the infrastructure (as a lost save does), twice: the
    # destroy is verified in the IM's listing, so it destroys again until the IM really lists nothing.
    proxy.fail_next("DELETE", lying, 200, times=2)
    report = destroy_class(resolve_paths(), "lab", on_event=on_event, settle=4.0)
    assert report.leftovers == () and sorted(report.destroyed) == ["lab-01", "lab-02"]
    assert len(proxy.calls("DELETE", lying)) >= 3  # two lies, then the real one
    assert im_ids(local_im, im_user) == set()
    assert ClassStore(resolve_paths().state_db).find("lab") is None
