"""A create whose answer is lost, or that lands late: exactly one infrastructure, always recorded."""

from __future__ import annotations

import pytest

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import STATUS_SUBMITTING, DeploymentStore
from deployer.errors import AuthError
from deployer.lifecycle.deploy import submit
from deployer.paths import resolve_paths
from tests.faults.proxy import Fault
from tests.faults.scenarios import LONG_HOLD_S, WINDOW_S, Lab, fault_for
from tests.im.conftest import eventually
from tests.im.templates import two_group_tosca

pytestmark = pytest.mark.im

CREATE = ("POST", r"^/infrastructures\?async")


def _submit(lab: Lab, name: str):
    tag = lab.tags[name]
    with lab.client() as client:
        return submit(
            lab.store,
            client,
            name=name,
            cloud="local",
            tosca=two_group_tosca(tag),
            tosca_redacted=two_group_tosca(tag),
            deployment_tag=tag,
            spec_hash="h",
        )


def _tagged(lab: Lab, name: str) -> list[str]:
    with lab.direct() as im:
        return [i for i in im.list_ids() if im.infrastructure_tag(i) == lab.tags[name]]


def test_lost_answer_is_adopted_not_sent_again(lab):
    lab.proxy.add(fault_for("reset_after", method=CREATE[0], path=CREATE[1]))
    name = lab.new_name("lost-answer")
    record = _submit(lab, name)
    assert len(lab.proxy.requests(*CREATE)) == 1, "the template went out once"
    assert _tagged(lab, name) == [record.infrastructure_id]
    assert lab.store.get(name).status == "pending"


def test_lost_request_is_sent_again_only_once_it_can_no_longer_land(lab):
    lab.proxy.add(fault_for("reset_before", method=CREATE[0], path=CREATE[1]))
    name = lab.new_name("lost-request")
    record = _submit(lab, name)
    first, second = lab.proxy.requests(*CREATE)
    assert not first.forwarded and second.forwarded
    assert second.at - first.at >= WINDOW_S - 0.1, "no second POST inside the landing window"
    assert _tagged(lab, name) == [record.infrastructure_id]


def test_a_failed_lookup_keeps_the_record_while_the_im_may_hold_the_infrastructure(lab):
    # The create lands but its answer is lost; then the lookup is refused (an expired token, say).
    lab.proxy.add(fault_for("reset_after", method=CREATE[0], path=CREATE[1]))
    lab.proxy.add(Fault("status", method="GET", path=r"^/infrastructures$", status=401, times=-1))
    name = lab.new_name("auth-lookup")
    with pytest.raises(AuthError, match="record is kept"):
        _submit(lab, name)
    record = lab.store.get(name)
    assert record.status == STATUS_SUBMITTING and record.infrastructure_id is None
    lab.proxy.clear()
    assert _submit(lab, name).infrastructure_id == _tagged(lab, name)[0]  # the re-run adopts it


def test_late_landing_duplicate_is_reported_by_list_and_destroyed_by_status(cli, lab, monkeypatch):
    # The first create is held past the landing window: deployer sends a second one, then the first lands.
    monkeypatch.setenv("DEPLOYER_IM_TIMEOUT", "2,2.5")
    lab.proxy.add(fault_for("hold", method=CREATE[0], path=CREATE[1], late=True))
    created = cli.json(
        "create",
        "--cloud",
        "local",
        "--name",
        "late",
        "--im-url",
        lab.proxy.url,
        "--auth-file",
        str(cli.auth_file),
        "--no-wait",
    )
    store = DeploymentStore(resolve_paths().state_db)
    tag = store.get("late").deployment_tag
    with IMClient(lab.im_url, lab.entries) as im:
        eventually(
            lambda: len([i for i in im.list_ids() if im.infrastructure_tag(i) == tag]),
            2,
            within=LONG_HOLD_S + 20,
        )
        rows = {row["infrastructure_id"]: row for row in cli.json("list")}
        duplicate = next(i for i in rows if i != created["infrastructure_id"])
        assert rows[duplicate]["drift"] == "duplicate of late"
        status = cli("status", "late")
        assert f"destroyed duplicate infrastructure {duplicate}" in status.stderr
        eventually(
            lambda: [i for i in im.list_ids() if im.infrastructure_tag(i) == tag],
            [created["infrastructure_id"]],
        )
    cli("destroy", "late", "--yes")
