"""Expanders: tiny named strategies that choose which group grows when several could host the pods.

Each expander keeps the best of the options it is given; ``choose()`` chains them in the configured order
(default: edge-first, priority, least-cost, least-waste) and breaks the last tie by group name, so the
choice is deterministic. Called by the scale-up planner once per growth step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from deployer.core.elasticity.model import GroupKind, NodeGroup

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Option:
    """Growing ``group`` by ``count`` nodes would place ``pod_uids``."""

    group: NodeGroup
    count: int
    pod_uids: tuple[str, ...]
    waste: float  # mean share of cpu and memory the new nodes would leave unused (0..1)

    @property
    def cost_per_pod(self) -> float:
        return self.count * self.group.cost_per_hour / max(len(self.pod_uids), 1)


Expander = Callable[[list[Option]], list[Option]]


def _keep_best(options: list[Option], score: Callable[[Option], float]) -> list[Option]:
    best = min(score(o) for o in options)
    return [o for o in options if score(o) <= best + _EPSILON]


def edge_first(options: list[Option]) -> list[Option]:
    """Boards we already own cost nothing per hour and boot fast: use them before renting VMs."""
    edge = [o for o in options if o.group.kind is not GroupKind.CLOUD]
    return edge or options


def priority(options: list[Option]) -> list[Option]:
    return _keep_best(options, lambda o: -o.group.priority)


def least_cost(options: list[Option]) -> list[Option]:
    return _keep_best(options, lambda o: o.cost_per_pod)


def least_waste(options: list[Option]) -> list[Option]:
    return _keep_best(options, lambda o: o.waste)


def most_pods(options: list[Option]) -> list[Option]:
    return _keep_best(options, lambda o: -len(o.pod_uids))


EXPANDERS: dict[str, Expander] = {
    "edge-first": edge_first,
    "priority": priority,
    "least-cost": least_cost,
    "least-waste": least_waste,
    "most-pods": most_pods,
}


def choose(options: Sequence[Option], chain: Sequence[str]) -> Option:
    """The option the chain prefers. ``options`` must not be empty; unknown names raise ValueError."""
    unknown = [name for name in chain if name not in EXPANDERS]
    if unknown:
        raise ValueError(f"unknown expander '{unknown[0]}'; known: {', '.join(EXPANDERS)}")
    remaining = list(options)
    for name in chain:
        if len(remaining) == 1:
            break
        remaining = EXPANDERS[name](remaining)
    return min(remaining, key=lambda o: o.group.name)
