"""The baselines and the simulated cluster on traces small enough to work out by hand.

Timings are exact (no boot jitter): cloud nodes boot in 180 s and shut down in 30 s.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from deployer.core.elasticity.model import ElasticitySettings
from deployer.sim.clues import CluesSettings
from deployer.sim.engine import Simulation
from deployer.sim.run import PolicySettings, simulate, summarize
from tests.sim.conftest import EXACT, cloud, edge, job

HOUR = 3600.0


def test_static_max_keeps_every_node_on_and_places_first_fit():
    # A (1 cpu) lands on wn-1; B (4 cpu) no longer fits there and lands on wn-2. The run ends at A's end.
    result = simulate((cloud(max_size=2, cost=0.5),), [job(0, 1, 100), job(10, 4, 50)], "static-max", EXACT)
    assert result.jobs_completed == 2
    assert result.node_hours == pytest.approx(2 * 100 / HOUR)
    assert result.cost == pytest.approx(0.5 * 2 * 100 / HOUR)
    assert (result.pending_p50_s, result.pending_max_s) == (0, 0)
    assert result.lower_bound_node_hours == pytest.approx((1 * 100 + 4 * 50) / 4 / HOUR)
    assert (result.im_calls, result.evictions, result.peak_nodes) == (0, 0, 2)


def test_static_min_runs_only_the_minimum_and_queues_in_order():
    # One node: A runs 0-100, B (queued first) 100-200, C 200-210. Waits 0, 100, 150.
    jobs = [job(0, 4, 100), job(0, 4, 100), job(50, 2, 10)]
    result = simulate((cloud(min_size=1, max_size=3),), jobs, "static-min", EXACT)
    assert result.jobs_completed == 3
    assert result.end_s == 210
    assert result.node_hours == pytest.approx(210 / HOUR)
    assert result.pending_p50_s == 100
    assert result.pending_p95_s == pytest.approx(145)  # linear between the 2nd (100) and 3rd (150) wait
    assert result.pending_max_s == 150


def test_static_min_of_zero_runs_nothing_and_reports_the_wait_so_far():
    result = simulate((cloud(),), [job(0, 1, 10), job(30, 1, 10)], "static-min", EXACT)
    assert (result.jobs_completed, result.node_hours) == (0, 0)
    assert result.pending_max_s == 30  # censored at the end of the run (the last submission)


@pytest.mark.parametrize(("strict", "waits"), [(False, [0, 99, 0]), (True, [0, 99, 98])])
def test_backfill_versus_strict_fifo(strict, waits):
    # One 4-cpu node: A takes 3 cpu until t=100; B (2 cpu) must wait; C (1 cpu) fits at once unless the
    # queue is strict FIFO, where it waits behind B.
    jobs = [job(0, 3, 100), job(1, 2, 10), job(2, 1, 10)]
    sim = Simulation((cloud(max_size=1),), jobs, _static_max(), replace(EXACT, strict_fifo=strict)).run()
    assert [pod.started_at - pod.job.submit_s for pod in sim.pods] == waits


def test_queue_period_rounds_starts_and_ends_to_the_step():
    # A submitted at 5 starts on the next 20 s step (20) and its end (50) is seen at 60; B, submitted on a
    # step, starts on that same step.
    config = replace(EXACT, strict_fifo=True, queue_period=20)
    sim = Simulation((cloud(max_size=1),), [job(5, 1, 30), job(60, 1, 10)], _static_max(), config).run()
    assert [pod.started_at for pod in sim.pods] == [20, 60]
    assert sim.end_time == 80


def test_unplaceable_jobs_are_reported_and_block_nobody():
    config = replace(EXACT, strict_fifo=True)
    result = simulate((cloud(max_size=1),), [job(0, 8, 10), job(1, 1, 10)], "static-max", config)
    assert (result.unplaceable, result.jobs_completed, result.pending_max_s) == (1, 1, 0)


def test_clues_reacts_after_reconsider_time_and_powers_off_after_idle_time():
    # Job seen at t=0; requested after RECONSIDER_JOB_TIME at the t=65 pass; node powered on at the next
    # pass (t=70), Ready at 250, job 250-350; seen idle at 350, powered off at the 655 pass (idle > 300 s),
    # off at 685.
    result = simulate((cloud(),), [job(0, 1, 100)], "clues", EXACT)
    assert result.pending_p50_s == 250
    assert result.node_hours == pytest.approx((685 - 70) / HOUR)
    assert result.im_calls == 2  # one per node powered on, one per node powered off
    assert [(e.time, e.delta) for e in result.scale_events] == [(70, 1), (655, -1)]


def test_clues_max_booting_nodes_boots_one_at_a_time():
    # Three 4-cpu jobs; with MAX_BOOTING_NODES=1 a node is chosen only once the previous one is seen up.
    settings = PolicySettings(clues=CluesSettings(max_booting_nodes=1))
    jobs = [job(0, 4, 1000), job(0, 4, 1000), job(0, 4, 1000)]
    result = simulate((cloud(max_size=3),), jobs, "clues", EXACT, settings)
    ups = [e.time for e in result.scale_events if e.delta > 0]
    assert ups == [70, 250, 430]
    assert result.pending_max_s == 610


def test_clues_manages_only_the_first_worker_group():
    groups = (edge(), cloud("first", max_size=1), cloud("second", max_size=3))
    result = simulate(groups, [job(0, 4, 100), job(0, 4, 100)], "clues", EXACT)
    assert {e.group for e in result.scale_events} == {"first"}
    assert result.jobs_completed == 2
    assert result.pending_max_s == 350  # the second job waits for the first (250-350) on the only node


@pytest.mark.parametrize(
    ("idle_policy", "idle_wait"),
    [
        ("fixed", 300),  # idle_time
        ("break-even", 75),  # min(idle_time, max(60 s floor, 45 s boot + 30 s shutdown))
    ],
)
def test_ours_boots_after_the_batching_window_and_prefers_edge_boards(idle_policy, idle_wait):
    # A multi-arch job: the planner wakes a board (edge first) after the 1 s batching window; it boots in 45 s.
    settings = PolicySettings(elasticity=ElasticitySettings(idle_policy=idle_policy))
    result = simulate((cloud(), edge()), [job(0, 1, 100)], "deployer", EXACT, settings)
    assert result.pending_p50_s == pytest.approx(1 + 45)
    assert set(result.node_hours_by_group) == {"wn", "pis"}
    assert result.node_hours_by_group["wn"] == 0
    # On for boot + job + the idle wait + shutdown, give or take one 30 s resync.
    on = 45 + 100 + idle_wait + 30
    assert on / HOUR <= result.node_hours <= (on + 60) / HOUR
    assert (result.evictions, result.rejected_actions) == (0, 0)


def test_break_even_waits_for_the_shutdown_time_the_simulation_uses():
    # A cloud node (180 s boot) with a 120 s shutdown: break-even keeps it idle 180 + 120 = 300 s, i.e. the
    # full idle_time of 400 s is cut to 300 s; with the default 30 s shutdown it would be 210 s.
    slow_off = replace(EXACT, shutdown_seconds=120.0)
    settings = PolicySettings(elasticity=ElasticitySettings(idle_time=400, idle_policy="break-even"))
    result = simulate((cloud(),), [job(0, 1, 100)], "deployer", slow_off, settings)
    down = [e for e in result.scale_events if e.delta < 0]
    assert len(down) == 1
    idle_from = 1 + 180 + 100
    assert idle_from + 300 <= down[0].time <= idle_from + 300 + 30


def test_ours_never_scales_for_a_job_no_group_can_hold():
    result = simulate((cloud(),), [job(0, 1, 10, arch="arm64")], "deployer", EXACT)
    assert (result.unplaceable, result.node_hours, result.scale_events) == (1, 0, ())


class _DrainAt:
    """A test policy: one node on from the start, drained at a given time whatever runs there."""

    name = "drain-at"

    def __init__(self, when: float) -> None:
        self.when = when

    def floor(self, group):
        return 1

    def start(self, sim):
        sim.start_on("wn", 1)
        sim.set_timer(self.when, "drain")

    def on_pending(self, sim, pod):
        if not sim.nodes["wn-2"].is_on:
            sim.power_on("wn", names=["wn-2"])

    def on_timer(self, sim, tag):
        sim.drain_and_power_off(["wn-1"], "test")

    def on_finished(self, sim, pod):
        return None


def test_draining_a_busy_node_counts_evictions_and_reruns_the_job():
    # The job runs on wn-1 from 0; wn-1 is drained at 50: one eviction; the job waits for wn-2 (Ready at
    # 230) and runs again from scratch until 330. Its wait counts its first start only.
    sim = Simulation((cloud(max_size=2),), [job(0, 1, 100)], _DrainAt(50), EXACT).run()
    result = summarize(sim)
    assert (result.evictions, result.jobs_completed) == (1, 1)
    assert sim.last_finish == 330
    assert result.pending_max_s == 0
    assert result.node_hours == pytest.approx((50 + 30) / HOUR + (330 - 50) / HOUR)


def _static_max():
    from deployer.sim.policies import StaticPolicy

    return StaticPolicy(at_max=True)


def test_clues_gives_up_on_a_node_that_never_boots_and_tries_another():
    # Every boot fails. Powered on at 70, wn-1 is still not up MAX_WAIT_POWERON (300 s) later: at the t=370
    # poll it is marked in error and removed, and the same pass powers on wn-2 for the waiting request.
    config = replace(EXACT, boot_failure_rate=1.0, settle_cap=1800)
    result = simulate((cloud(),), [job(0, 1, 100)], "clues", config)
    assert [(e.time, e.group, e.delta) for e in result.scale_events[:3]] == [
        (70, "wn", 1),
        (370, "wn", -1),
        (370, "wn", 1),
    ]
    assert result.jobs_completed == 0
    assert result.rejected_actions == 0
