"""Our policy with run times learned from the pods it saw finish, in the simulator.

Unseen classes (no class with enough finished pods) give exactly today's runs; a workload of one class that
repeats is learned, saves boots and still never evicts and finishes everything (hypothesis).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.sim.engine import SimConfig
from deployer.sim.run import PolicySettings, simulate
from deployer.sim.trace import TraceJob
from tests.sim.conftest import EXACT, cloud, edge, job

GROUPS = (cloud("wn", max_size=4), edge(hosts=2))
SIM_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _policy(wait_for_room: str) -> PolicySettings:
    base = PolicySettings()
    return replace(base, elasticity=replace(base.elasticity, wait_for_room=wait_for_room))


_unique_jobs = st.lists(
    st.tuples(st.floats(0, 2000).map(lambda v: round(v, 1)), st.sampled_from((500, 1000, 2000))),
    min_size=1,
    max_size=20,
).map(
    # Every job its own memory request, hence its own workload class: nothing can be learned.
    lambda rows: [job(t, cpu / 1000, 30 + i * 7, memory=100 + i) for i, (t, cpu) in enumerate(sorted(rows))]
)


@SIM_SETTINGS
@given(jobs=_unique_jobs, seed=st.integers(0, 100))
def test_without_a_repeated_class_the_runs_are_exactly_todays(jobs, seed):
    config = SimConfig(seed=seed)
    learned = simulate(GROUPS, jobs, "deployer", config, _policy("break-even")).to_dict()
    today = simulate(GROUPS, jobs, "deployer", config, _policy("never")).to_dict()
    assert learned == today


def test_a_steady_stream_of_one_class_waits_for_ending_pods_instead_of_booting():
    # Five 1-cpu, 100 s jobs every 1000 s on one always-on 4-cpu VM. Today the fifth pod of each wave boots
    # a second VM; once the first wave has finished, it waits 100 s for a pod of its class to end instead.
    jobs = [job(1000.0 * wave + i, 1, 100) for wave in range(6) for i in range(5)]
    cloud_only = (cloud("wn", min_size=1, max_size=3),)
    learned = simulate(cloud_only, jobs, "deployer", EXACT, _policy("break-even"))
    today = simulate(cloud_only, jobs, "deployer", EXACT, _policy("never"))
    assert learned.jobs_completed == today.jobs_completed == len(jobs)
    assert learned.evictions == today.evictions == 0
    assert today.im_calls == 2 * 6  # a boot and a removal per wave
    assert learned.im_calls == 2  # the first wave only: nothing was known yet
    assert learned.node_hours < today.node_hours
    assert learned.pending_max_s == today.pending_max_s == 96  # the booted VM came too late anyway


_one_class_jobs = st.lists(
    st.builds(
        TraceJob,
        submit_s=st.floats(0, 3000).map(lambda v: round(v, 1)),
        cpu_m=st.just(1000),
        memory_mib=st.just(512),
        duration_s=st.floats(10, 600).map(lambda v: round(v, 1)),
        kind=st.sampled_from(("job", "service")),
    ),
    min_size=10,
    max_size=40,
).map(lambda jobs: sorted(jobs, key=lambda j: j.submit_s))


@SIM_SETTINGS
@given(jobs=_one_class_jobs, seed=st.integers(0, 100), mode=st.sampled_from(("boot", "break-even")))
def test_a_learned_class_never_evicts_and_finishes_all_work(jobs, seed, mode):
    result = simulate(GROUPS, jobs, "deployer", SimConfig(seed=seed), _policy(mode))
    assert result.evictions == 0
    assert result.rejected_actions == 0
    assert result.jobs_completed == len(jobs)
    assert result.settled
