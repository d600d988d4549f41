"""Run times learned from finished pods: the model itself, and what ``plan()`` does with it.

The safety properties (hypothesis): a model that knows none of the running pods' classes decides exactly as
no model; any model never removes a node that would not be removed without it, never evicts, and keeps a
pod waiting for room only within ``room_wait_limit`` of its creation.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from deployer.core.elasticity import RuntimeModel, learn, plan, workload_class
from deployer.core.elasticity.lifecycle import idle_limit
from deployer.core.elasticity.model import NodePhase, OwnerKind
from deployer.core.elasticity.runtimes import learn_finished, remaining
from tests.core.builders import make_group, make_node, make_pod, make_record, make_state, settings, snapshot
from tests.core.test_elasticity_properties import NOW, PROPERTY_SETTINGS, clusters

JOB = OwnerKind.JOB


def _model(cls: str, durations: list[float], **kw: object) -> RuntimeModel:
    return learn(RuntimeModel(**kw), ((cls, d) for d in durations))  # type: ignore[arg-type]


def test_learn_keeps_the_latest_window_and_ignores_impossible_run_times():
    model = _model("c", [float(d) for d in range(1, 11)], window=4)
    assert model.samples["c"] == (7.0, 8.0, 9.0, 10.0)
    same = learn(model, (("c", -5.0), ("c", float("nan")), ("c", float("inf"))))
    assert same is model  # nothing learned, the value is returned as is
    assert RuntimeModel().samples == {}  # the input model was not changed by learning


def test_remaining_is_a_high_quantile_of_the_run_beyond_what_a_pod_has_run():
    model = _model("c", [100.0] * 9 + [1000.0], quantile=0.9)
    assert remaining(model, "c", 0) == 100  # nine in ten finished by 100 s
    assert remaining(model, "c", 60) == 40
    assert remaining(model, "c", 101) is None  # only one pod ever ran longer: too few to say
    assert remaining(model, "unknown", 0) is None
    assert remaining(_model("c", [10.0] * 4), "c", 0) is None  # fewer than min_samples finished


def test_workload_class_trims_generated_run_suffixes_but_not_an_explicit_class():
    a = make_pod(labels={"job-name": "render-28391022"}, owner=JOB, cpu=1000, mem=512)
    b = make_pod(labels={"job-name": "render-28391023"}, owner=JOB, cpu=1000, mem=512)
    c = make_pod(labels={"job-name": "render-28391023"}, owner=JOB, cpu=2000, mem=512)
    explicit = make_pod(labels={"deployer.io/workload-class": "etl-abcde"}, cpu=1000, mem=512)
    assert workload_class(a) == workload_class(b) == "default/Job/render/1000m/512Mi/0gpu"
    assert workload_class(c) != workload_class(a)  # other requests, other class
    assert "etl-abcde" in workload_class(explicit)


GROUP = make_group("wn", max_size=3, boot_seconds=180.0)
NODE = make_node("wn-0", GROUP)
RECORDS = make_state(make_record("wn-0", "wn", NodePhase.USED, since=0.0))


def _busy_node_and_pending(run_for: float, pending_age: float = 0.0):
    """wn-0 full with four 1-cpu job pods running ``run_for`` s; one more 1-cpu job pod pending."""
    running = [
        make_pod(f"run{i}", cpu=1000, mem=512, node="wn-0", owner=JOB, started_at=NOW - run_for)
        for i in range(4)
    ]
    pending = make_pod("new", cpu=1000, mem=512, owner=JOB, created_at=NOW - pending_age)
    return snapshot([NODE], [*running, pending]), workload_class(running[0])


def test_a_pod_waits_for_room_that_a_known_class_frees_before_a_boot():
    snap, cls = _busy_node_and_pending(run_for=50)
    model = _model(cls, [60.0] * 10)  # these pods end 10 s from now
    waited = plan(snap, (GROUP,), RECORDS, settings(), NOW, model)
    assert waited.scale_ups == ()
    assert waited.explanations["uid-new"].startswith("waiting for room on node wn-0")
    assert "t=100010" in waited.explanations["uid-new"]
    booted = plan(snap, (GROUP,), RECORDS, settings(wait_for_room="never"), NOW, model)
    assert [(u.group, u.count) for u in booted.scale_ups] == [("wn", 1)]


def test_no_estimate_or_a_deadline_passed_grows_the_group_as_without_a_model():
    without = plan(*_inputs(run_for=50), NOW)
    # The running pods outlived every finished pod of their class: nothing is known about their end.
    snap, cls = _busy_node_and_pending(run_for=500)
    overdue = plan(snap, (GROUP,), RECORDS, settings(), NOW, _model(cls, [60.0] * 10))
    assert overdue.scale_ups == without.scale_ups and overdue.explanations == without.explanations
    # The pod already waited longer than its limit: the estimate was wrong, it gets a node now.
    snap, cls = _busy_node_and_pending(run_for=50, pending_age=10_000)
    late = plan(snap, (GROUP,), RECORDS, settings(), NOW, _model(cls, [60.0] * 10))
    assert [(u.group, u.count) for u in late.scale_ups] == [("wn", 1)]


def _inputs(run_for: float):
    snap, _ = _busy_node_and_pending(run_for)
    return snap, (GROUP,), RECORDS, settings()


def test_room_too_far_away_still_boots():
    snap, cls = _busy_node_and_pending(run_for=50)
    # They end in 2000 s: beyond boot (180) + idle wait (300) + shutdown (30) + the run time, capped.
    far = plan(snap, (GROUP,), RECORDS, settings(), NOW, _model(cls, [2050.0] * 10))
    assert [(u.group, u.count) for u in far.scale_ups] == [("wn", 1)]
    # "boot": only room freed within one boot time (180 s) counts; 300 s is too late.
    later = plan(snap, (GROUP,), RECORDS, settings(wait_for_room="boot"), NOW, _model(cls, [350.0] * 10))
    assert [(u.group, u.count) for u in later.scale_ups] == [("wn", 1)]


@st.composite
def timed_clusters(draw):
    """A random cluster whose running pods have start times, and a model learned for some of their classes."""
    snap, groups, state, cfg = draw(clusters())
    pods = tuple(
        replace(p, started_at=NOW - draw(st.sampled_from([0.0, 30.0, 300.0]))) if p.node_name else p
        for p in snap.pods
    )
    classes = sorted({workload_class(p) for p in pods})
    known = draw(st.lists(st.sampled_from(classes), unique=True)) if classes else []
    finished = [(c, draw(st.sampled_from([20.0, 60.0, 400.0, 5000.0]))) for c in known for _ in range(6)]
    cfg = replace(cfg, wait_for_room=draw(st.sampled_from(["boot", "break-even"])))
    return replace(snap, pods=pods), groups, state, cfg, learn(RuntimeModel(), finished)


@PROPERTY_SETTINGS
@given(timed_clusters())
def test_a_model_of_unseen_classes_decides_exactly_as_no_model(cluster):
    snap, groups, state, cfg, model = cluster
    unseen = learn(RuntimeModel(), (("elsewhere/Job/other/1m/1Mi/0gpu", 30.0) for _ in range(10)))
    assert plan(snap, groups, state, cfg, NOW, unseen) == plan(snap, groups, state, cfg, NOW)
    off = replace(cfg, wait_for_room="never")
    assert plan(snap, groups, state, off, NOW, model) == plan(snap, groups, state, off, NOW)


@PROPERTY_SETTINGS
@given(timed_clusters())
def test_a_learned_model_removes_nothing_more_and_bounds_each_wait(cluster):
    snap, groups, state, cfg, model = cluster
    learned = plan(snap, groups, state, cfg, NOW, model)
    baseline = plan(snap, groups, state, cfg, NOW)
    removed = {n for d in learned.scale_downs for n in d.nodes}
    assert removed <= {n for d in baseline.scale_downs for n in d.nodes}  # never an extra drain
    assert learned.failures == baseline.failures and learned.unplaceable == baseline.unplaceable
    ready = {n.name for n in snap.nodes if n.ready and not n.unschedulable}
    pods = {p.uid: p for p in snap.pods}
    # Twice a group's overhead (boot, idle wait, shutdown) is the longest any pod may wait for room.
    longest = max(2 * (g.boot_seconds + idle_limit(g, cfg) + g.shutdown_seconds) for g in groups)
    for uid, why in learned.explanations.items():
        if why.startswith("waiting for room on node "):
            assert why.split()[5].rstrip(":") in ready - removed
            assert NOW - pods[uid].created_at < longest


def test_learn_finished_counts_each_succeeded_pod_once_and_forgets_pods_no_longer_listed():
    done = make_pod("a", owner=JOB, node="n", phase="Succeeded", started_at=100.0, finished_at=160.0)
    failed = make_pod("b", owner=JOB, node="n", phase="Failed", started_at=100.0, finished_at=110.0)
    running = make_pod("c", owner=JOB, node="n", started_at=100.0)
    model, learned = learn_finished(RuntimeModel(), [done, failed, running], frozenset())
    assert model.samples == {workload_class(done): (60.0,)} and learned == {"uid-a"}
    again, learned = learn_finished(model, [done], learned)  # the next snapshot still lists it
    assert again is model
    _, learned = learn_finished(model, [], learned)  # gone from the cluster: forgotten
    assert learned == frozenset()
