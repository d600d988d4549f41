"""IMClient against the real IM server (Dummy connector): every call, error mapping, retries."""

from __future__ import annotations

import logging

import pytest

from deployer.adapters.im.auth import AuthEntry
from deployer.adapters.im.client import IMClient
from deployer.adapters.im.local_server import free_port
from deployer.errors import AuthError, NotDelivered, RemoteError, RemoteNotFound, TransientError
from deployer.lifecycle.deploy import follow
from tests.im.conftest import eventually
from tests.im.templates import new_tag, small_tosca

pytestmark = pytest.mark.im


@pytest.fixture
def client(local_im, im_user):
    with IMClient(local_im.url, im_user.entries, retries=2, backoff_base=0.05) as im:
        yield im


def test_full_round_trip_of_one_infrastructure(client):
    assert client.version().startswith(("1.", "2."))
    tag = new_tag()
    inf_id = client.create(small_tosca(tag, workers=1))
    try:
        assert client.list_ids() == [inf_id]
        final = follow(client, inf_id, timeout=30, poll_interval=0.2)
        assert final.state == "configured"
        assert sorted(final.vm_states) == ["0", "1"]
        assert sorted(client.vm_ids(inf_id)) == ["0", "1"]
        assert tag in client.tosca(inf_id)
        assert "system front" in client.radl(inf_id)
        assert client.infrastructure_tag(inf_id) == tag
        info = client.vm_info(inf_id, "0")
        assert info["id"] == "front"
        assert info["state"] == "configured"
        outputs = client.outputs(inf_id)
        assert outputs["front_private_ip"] == "10.0.0.1"
        assert "Contextualization disabled" in client.contmsg(inf_id)
        assert isinstance(client.contmsg(inf_id, "1"), str)
    finally:
        assert client.destroy(inf_id) is True
    assert client.destroy(inf_id) is False  # already gone is success
    eventually(client.list_ids, [])
    with pytest.raises(RemoteNotFound):
        client.state(inf_id)


def test_add_vms_adds_only_the_system_asked_and_removals_name_their_vms(client):
    tag = new_tag()
    inf_id = client.create(small_tosca(tag, workers=1))
    try:
        follow(client, inf_id, timeout=30, poll_interval=0.2)
        added = client.add_vms(inf_id, "wn", 2)
        assert sorted(added) == ["2", "3"]
        assert {client.vm_info(inf_id, vm)["id"] for vm in added} == {"wn"}
        follow(client, inf_id, timeout=30, poll_interval=0.2)
        with pytest.raises(RemoteError, match="no system"):
            client.add_vms(inf_id, "nope", 1)
        assert client.state(inf_id).state == "configured"  # a refused add did not touch the IM
        # Remove by name: 1 and 3 go, 2 (the middle one) stays.
        client.remove_vms(inf_id, ["1", "3"])
        assert sorted(client.vm_ids(inf_id)) == ["0", "2"]
        client.remove_vms(inf_id, ["2"])
        client.remove_vms(inf_id, ["2"])  # repeating a removal is harmless
        assert client.vm_ids(inf_id) == ["0"]
    finally:
        client.destroy(inf_id)


def test_stop_and_start(client):
    tag = new_tag()
    inf_id = client.create(small_tosca(tag, workers=0))
    try:
        follow(client, inf_id, timeout=30, poll_interval=0.2)
        client.stop(inf_id)
        eventually(lambda: client.state(inf_id).state, "stopped")
        client.start(inf_id)
        eventually(lambda: client.state(inf_id).state in ("running", "configured"), True)
    finally:
        client.destroy(inf_id)


def test_cloud_images_and_quotas(client):
    images = client.cloud_images("local")
    assert images and all({"uri", "name"} <= set(image) for image in images)
    assert client.cloud_quotas("local")["cores"] == {"used": 1, "limit": 10}  # the Dummy connector's
    with pytest.raises(RemoteError):
        client.cloud_images("no-such-cloud")


def test_dry_run_estimates_without_creating(client):
    estimate = client.estimate(small_tosca(new_tag(), workers=2))
    assert estimate, "the IM returns one estimate per cloud"
    assert client.list_ids() == []


def test_refused_template_carries_the_ims_message(client):
    broken = small_tosca(new_tag()).replace("num_cpus: 1", "num_cpuz: 1", 1)
    with pytest.raises(RemoteError) as caught:
        client.create(broken)
    message = str(caught.value)
    assert message.startswith("IM refused the template: ")
    assert 'template "front" contains unknown field "num_cpuz"' in message
    assert "File " not in message  # the IM's stack frames are trimmed
    assert client.list_ids() == []


def test_missing_im_line_names_the_line_to_add(local_im):
    with IMClient(local_im.url, [AuthEntry("Dummy", "local", {})]) as im, pytest.raises(AuthError) as caught:
        im.list_ids()
    assert caught.value.status == 401
    assert "type = InfrastructureManager" in str(caught.value)
    assert "add one" in str(caught.value)


def test_other_users_infrastructure_is_forbidden(client, local_im, tmp_path):
    tag = new_tag()
    inf_id = client.create(small_tosca(tag))
    try:
        intruder = local_im.new_user(tmp_path)
        with IMClient(local_im.url, intruder.entries) as other, pytest.raises(AuthError) as caught:
            other.state(inf_id)
        assert caught.value.status == 403
        assert "username/password" in str(caught.value)
    finally:
        client.destroy(inf_id)


def test_safe_calls_retry_with_bounded_jittered_backoff():
    sleeps: list[float] = []
    port = free_port()  # nobody listens: connection refused every time
    im = IMClient(
        f"http://127.0.0.1:{port}",
        [AuthEntry("InfrastructureManager", None, {"username": "u", "password": "secret-pw"})],
        retries=4,
        backoff_base=0.5,
        backoff_cap=1.5,
        sleep=sleeps.append,
    )
    with pytest.raises(TransientError) as caught:
        im.list_ids()
    assert "did not answer" in str(caught.value)
    assert len(sleeps) == 3  # four attempts, three pauses
    assert all(0 <= s <= 1.5 for s in sleeps)


def test_create_to_a_closed_port_is_known_not_delivered_and_sent_once():
    sleeps: list[float] = []
    im = IMClient(
        f"http://127.0.0.1:{free_port()}",
        [AuthEntry("InfrastructureManager", None, {"username": "u", "password": "secret-pw"})],
        retries=3,
        sleep=sleeps.append,
    )
    with pytest.raises(NotDelivered, match="connection refused"):
        im.create(small_tosca("dpl-x"))
    assert sleeps == [], "a create is never retried by the client"


def test_insecure_is_explicit_and_warns(caplog, local_im, im_user):
    with caplog.at_level(logging.WARNING, logger="deployer"):
        IMClient(local_im.url, im_user.entries, verify=False).close()
    assert any("TLS verification is OFF" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deployer"):
        IMClient(local_im.url, im_user.entries).close()
    assert not caplog.records
