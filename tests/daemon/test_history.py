"""The elasticity history the dashboard draws: the reconciler records each acting round (pending pods, nodes
per group and phase, decisions with reasons) against the fake Kubernetes API; dry runs record nothing; the
store keeps only the newest rounds."""

from __future__ import annotations

import sqlite3

from deployer.adapters.state.history import Decision, ElasticityHistory, RoundSample
from deployer.adapters.state.nodes import NodeStateStore
from deployer.daemon.reconciler import Reconciler
from tests.daemon.conftest import SETTINGS, WN, pending_count, wait_for
from tests.daemon.fakes import FakePowerManager


def test_acting_rounds_are_recorded_with_their_decisions(kube_api, cluster, tmp_path) -> None:
    for i in range(5):
        kube_api.add_pod(f"work-{i}", cpu="1", memory="512Mi", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 5)
    history = ElasticityHistory(tmp_path / "state.db", "c1")
    reconciler = Reconciler(
        cluster,
        [WN],
        SETTINGS,
        {"wn": FakePowerManager()},
        NodeStateStore(tmp_path / "state.db", "c1"),
        history=history,
    )

    reconciler.run_once(1000.0, dry_run=True)
    assert history.samples() == [] and history.decisions() == []

    reconciler.run_once(1000.0)
    reconciler.run_once(1010.0)
    samples = history.samples()
    assert [s.at for s in samples] == [1000.0, 1010.0]
    assert samples[0].pending_pods == 5 and samples[0].nodes == {"wn": {"powering_on": 2}}
    [decision] = history.decisions()  # the second round waits for the booting nodes
    assert (decision.kind, decision.group, decision.count, decision.at) == ("scale_up", "wn", 2, 1000.0)
    assert decision.reason
    # Another cluster in the same database sees none of it.
    assert ElasticityHistory(tmp_path / "state.db", "other").samples() == []


def test_only_the_newest_rounds_are_kept(tmp_path) -> None:
    history = ElasticityHistory(tmp_path / "state.db", "c1", keep=3)
    for at in range(6):
        decision = Decision(float(at), "scale_up", "wn", (), 1, f"round {at}")
        history.record_round(RoundSample(float(at), at, {"wn": {"used": at}}), [decision])
    assert [s.at for s in history.samples()] == [3.0, 4.0, 5.0]
    assert [d.reason for d in history.decisions()] == ["round 5", "round 4", "round 3"]


class _BrokenHistory:
    def record_round(self, sample: RoundSample, decisions: list[Decision]) -> None:
        raise sqlite3.OperationalError("database is locked")


def test_a_failing_history_does_not_fail_the_round(kube_api, cluster, tmp_path) -> None:
    kube_api.add_pod("work", cpu="1", memory="512Mi", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    power = FakePowerManager()
    reconciler = Reconciler(
        cluster,
        [WN],
        SETTINGS,
        {"wn": power},
        NodeStateStore(tmp_path / "state.db", "c1"),
        history=_BrokenHistory(),
    )
    outcome = reconciler.run_once(1000.0)
    assert outcome.errors == [] and power.create_calls == [("wn", 1)]
