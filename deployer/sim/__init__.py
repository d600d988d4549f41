"""The elasticity simulator: replay a workload trace through a policy on a virtual clock.

``simulate(groups, jobs, policy, config, settings) -> SimResult`` runs one policy (``deployer``: the same
core ``plan()`` as the daemon; ``clues``: a model of CLUES; ``static-max``/``static-min``); ``compare`` runs
them all. ``load_trace`` reads CSV/JSON Lines traces, ``inputs_from_spec`` turns a cluster spec into groups
and policy settings, and ``deployer.sim.plot.plot_runs`` draws the runs (matplotlib, imported lazily).
Used by the ``deployer simulate`` command and the scripts in ``bench/``.
"""

from deployer.sim.clues import CluesSettings
from deployer.sim.engine import SimConfig
from deployer.sim.policies import DaemonTiming
from deployer.sim.run import POLICIES, PolicySettings, SimResult, compare, inputs_from_spec, simulate
from deployer.sim.trace import TraceJob, load_trace, write_trace_csv

__all__ = [
    "POLICIES",
    "CluesSettings",
    "DaemonTiming",
    "PolicySettings",
    "SimConfig",
    "SimResult",
    "TraceJob",
    "compare",
    "inputs_from_spec",
    "load_trace",
    "simulate",
    "write_trace_csv",
]
