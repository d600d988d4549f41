"""A recording fake power manager for the daemon tests (like Karpenter's fake cloud provider).

It remembers every call (``create_calls``, ``delete_calls``), names new nodes ``<group>-<n>``, and raises the
injected errors (``next_error = e`` queues one; ``errors`` holds the queue) from the next power-ons and
power-offs, one per call; listing never fails. No mock.patch: tests pass it where a real power manager goes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from deployer.adapters.power import PoweredOn
from deployer.core.elasticity.model import NodeGroup


@dataclass
class FakePowerManager:
    create_calls: list[tuple[str, int]] = field(default_factory=list)
    delete_calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    alive: dict[str, list[str]] = field(default_factory=dict)  # group -> node names that exist
    _counter: int = 0

    @property
    def next_error(self) -> Exception | None:
        return self.errors[0] if self.errors else None

    @next_error.setter
    def next_error(self, error: Exception) -> None:
        self.errors.append(error)

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def power_on(self, group: NodeGroup, count: int, *, busy: Collection[str] = ()) -> list[PoweredOn]:
        self._maybe_fail()
        self.create_calls.append((group.name, count))
        created = []
        for _ in range(count):
            name = f"{group.name}-{self._counter}"
            created.append(PoweredOn(name, vm_id=str(self._counter)))
            self.alive.setdefault(group.name, []).append(name)
            self._counter += 1
        return created

    def power_off(self, group: NodeGroup, nodes: Sequence[str]) -> None:
        self._maybe_fail()
        self.delete_calls.append((group.name, tuple(nodes)))
        existing = self.alive.get(group.name, [])
        self.alive[group.name] = [name for name in existing if name not in nodes]

    def nodes(self, group: NodeGroup) -> list[PoweredOn]:
        return [PoweredOn(name, vm_id=name.rsplit("-", 1)[1]) for name in self.alive.get(group.name, [])]
