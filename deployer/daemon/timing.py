"""Timing policies of the daemon loop: the exponential backoff (the pending-pod batcher lives in the core,
``deployer.core.elasticity.batching``, because the simulator uses it too).

Plain state machines that take ``now`` as an argument, so ``deployer.daemon.loop`` drives them with the real
clock and the tests drive them with numbers.
"""

from __future__ import annotations

from dataclasses import dataclass


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
