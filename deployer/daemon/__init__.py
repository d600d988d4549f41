"""The elasticity daemon runtime (use-case layer): the pure planner's decisions carried out on a real cluster.

- ``reconciler.Reconciler.run_once(now)``: one observe → plan → act round;
- ``actuator.Actuator``: scale-ups through power managers, drains through the eviction API, power-offs;
- ``loop.DaemonLoop``: event-driven rounds (pending-pod batching, resync, backoff, leader election);
- ``runner``: wiring from a deployment record, a ``--config`` file or explicit flags (used by the CLI);
- ``config``, ``metrics``, ``lock``, ``report``, ``timing``: the supporting pieces.
"""
