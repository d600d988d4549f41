"""Timing policies of the daemon loop: the pending-pod batcher and the exponential backoff.

Both are plain state machines that take ``now`` as an argument, so ``deployer.daemon.loop`` drives them with
the real clock and the tests drive them with numbers.
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


@dataclass
class Backoff:
    """Exponential backoff after consecutive failures: base, base*factor, ... capped at ``maximum``."""

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    failures: int = 0

    def failure(self) -> float:
        """Record one more failure; return how long to wait before the next try."""
        self.failures += 1
        return self.current()

    def current(self) -> float:
        if self.failures == 0:
            return 0.0
        return min(self.maximum, self.base * self.factor ** (self.failures - 1))

    def success(self) -> None:
        self.failures = 0
