"""The event loop against the fake API: a burst of pending pods becomes one decision, a watch that expires
(410 Gone) is recovered from, the loop survives failing rounds, and only the Lease holder acts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from deployer.adapters.kube import LeaderElector
from deployer.adapters.state.nodes import NodeStateStore
from deployer.daemon.loop import DaemonLoop, LoopSettings
from deployer.daemon.reconciler import Reconciler
from deployer.errors import TransientError
from tests.daemon.conftest import SETTINGS, WN
from tests.daemon.fakes import FakePowerManager

FAST = LoopSettings(batch_idle=0.3, batch_max=2.0, resync_period=30.0, backoff_base=0.1, backoff_max=1.0)


@contextmanager
def running(loop: DaemonLoop) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _loop(cluster, tmp_path, power: FakePowerManager, settings: LoopSettings = FAST) -> DaemonLoop:
    reconciler = Reconciler(cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / "s.db", "c1"))
    return DaemonLoop(reconciler, cluster, settings)


def test_a_burst_of_pending_pods_is_one_decision_and_a_410_is_survived(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager()
    # A generous idle window, so a busy machine cannot split the burst into two batches.
    loop = _loop(cluster, tmp_path, power, LoopSettings(batch_idle=1.0, batch_max=5.0, resync_period=30.0))
    with running(loop):
        until(lambda: loop.stats.rounds == 1)  # the start-up round: nothing to do
        for i in range(4):  # arrive over ~0.2 s: inside one batch window
            kube_api.add_pod(f"burst-{i}", cpu="1", unschedulable=True)
            time.sleep(0.05)
        until(lambda: power.create_calls)
        assert power.create_calls == [("wn", 2)]
        assert loop.stats.batches == 1

        kube_api.expire_watches()  # etcd compaction: every watch must relist (410 Gone)
        kube_api.add_pod("late", cpu="3", unschedulable=True)  # needs a node of its own
        until(lambda: len(power.create_calls) == 2)
    assert power.create_calls[1] == ("wn", 1)
    assert cluster.pods.relists >= 1


def test_failing_rounds_back_off_exponentially_and_the_loop_goes_on(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager(errors=[TransientError("IM 500"), TransientError("IM 500 again")])
    loop = _loop(cluster, tmp_path, power)
    with running(loop):
        kube_api.add_pod("work-0", cpu="1", unschedulable=True)
        until(lambda: power.create_calls == [("wn", 1)])
    assert loop.stats.failures == 2
    assert loop.stats.delays == [0.1, 0.2]


def test_only_the_lease_holder_acts(kube_api, cluster, tmp_path) -> None:
    power = FakePowerManager()  # one cloud behind both replicas
    electors = [
        LeaderElector(
            kube_api.api_client(),
            name="deployer-daemon-c1",
            namespace="kube-system",
            identity=identity,
            lease_duration=3,
            renew_deadline=2,
            retry_period=1,
        )
        for identity in ("replica-a", "replica-b")
    ]
    loops = [
        DaemonLoop(
            Reconciler(cluster, [WN], SETTINGS, {"wn": power}, NodeStateStore(tmp_path / f"{i}.db", "c1")),
            cluster,
            FAST,
            leader=elector,
        )
        for i, elector in enumerate(electors)
    ]
    electors[0].start()
    try:
        assert electors[0].wait_for_leadership(10)
        electors[1].start()
        with running(loops[0]), running(loops[1]):
            kube_api.add_pod("work-0", cpu="1", unschedulable=True)
            until(lambda: power.create_calls == [("wn", 1)])
            assert loops[1].stats.rounds == 0  # the follower never ran a round
            electors[0].stop()  # releases the Lease: the follower takes over
            assert electors[1].wait_for_leadership(10)
            kube_api.add_pod("work-1", cpu="3", unschedulable=True)
            until(lambda: len(power.create_calls) == 2)
        assert loops[1].stats.rounds >= 1
    finally:
        for elector in electors:
            elector.stop()
