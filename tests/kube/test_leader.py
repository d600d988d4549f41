"""Leader election on a Lease: one leader at a time, takeover after expiry, prompt takeover after release."""

from __future__ import annotations

import time

import pytest

from deployer.adapters.kube import LeaderElector

# The client requires whole seconds with lease > renew > 1.2 * retry >= 1.2.
TIMINGS = {"lease_duration": 3, "renew_deadline": 2, "retry_period": 1}


@pytest.fixture
def electors(kube_api):
    started: list[LeaderElector] = []

    def make(identity: str) -> LeaderElector:
        elector = LeaderElector(
            kube_api.api_client(), name="deployer", namespace="kube-system", identity=identity, **TIMINGS
        )
        started.append(elector.start())
        return elector

    yield make
    for elector in started:
        elector.stop(release=False)


def holder(kube_api) -> str | None:
    lease = kube_api.get("Lease", "kube-system", "deployer")
    return lease["spec"].get("holderIdentity") if lease else None


@pytest.mark.slow
def test_only_one_leads_and_the_other_takes_over_after_expiry(kube_api, electors):
    first = electors("a")
    assert first.wait_for_leadership(5)
    second = electors("b")
    time.sleep(TIMINGS["lease_duration"] + 0.5)  # longer than a lease: the leader keeps renewing
    assert (first.is_leader, second.is_leader, holder(kube_api)) == (True, False, "a")
    renewals = [
        r
        for r in kube_api.requests_to(
            "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/deployer"
        )
    ]
    assert len(renewals) >= 2

    crashed_at = time.monotonic()
    first.stop(release=False)  # what a crash looks like: the lease is left to expire
    assert not first.is_leader
    assert second.wait_for_leadership(10)
    assert time.monotonic() - crashed_at >= TIMINGS["lease_duration"] - 1
    assert holder(kube_api) == "b"


def test_a_released_lease_is_taken_at_the_next_try(kube_api, electors):
    first = electors("a")
    assert first.wait_for_leadership(5)
    second = electors("b")
    time.sleep(0.5)
    first.stop(release=True)
    assert holder(kube_api) is None
    assert second.wait_for_leadership(TIMINGS["retry_period"] + 2)
    assert holder(kube_api) == "b"


def test_invalid_timings_raise_instead_of_exiting(kube_api):
    with pytest.raises(ValueError):
        LeaderElector(
            kube_api.api_client(),
            name="x",
            namespace="default",
            identity="a",
            lease_duration=2,
            renew_deadline=2,
            retry_period=1,
        )
