"""When to decide: the pending-pod batcher shared by the daemon loop and the simulator.

A burst of new unschedulable pods becomes one ``plan()`` call instead of one per pod. Pure: the caller passes
``now`` (the real clock in ``deployer.daemon.loop``, the virtual one in ``deployer.sim``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Batcher:
    """Turns a burst of events into one decision: fire ``idle`` seconds after the last event, or ``maximum``
    seconds after the first, whichever comes first (Karpenter's 1 s / 10 s)."""

    idle: float = 1.0
    maximum: float = 10.0
    _first: float | None = None
    _last: float | None = None

    def add(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    @property
    def pending(self) -> bool:
        return self._first is not None

    def deadline(self) -> float | None:
        """When the current batch fires, or None when no event is waiting."""
        if self._first is None or self._last is None:
            return None
        return min(self._last + self.idle, self._first + self.maximum)

    def ready(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def reset(self) -> None:
        self._first = self._last = None
