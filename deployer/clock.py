"""An accelerated clock shared by the processes of a sandbox cluster (``deployer demo --speed X``).

The sandbox (node boot times, pod run times, object timestamps) and the daemon that scales it (idle times,
cooldowns, boot timeouts) must agree on how fast time passes, or a node would look idle to one and busy to
the other. They share one ``ScaledClock``: virtual time equals real time at ``epoch`` and then runs
``speed`` times faster. The sandbox records its clock in its state file; ``deployer daemon run`` against a
sandbox reads it from there, so both read the same virtual time. Speed 1 is the real clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaledClock:
    epoch: float  # real wall-clock time (time.time) at which virtual time equals real time
    speed: float = 1.0

    @classmethod
    def starting_now(cls, speed: float = 1.0) -> ScaledClock:
        return cls(time.time(), speed)

    def time(self) -> float:
        """Virtual wall-clock seconds since the Unix epoch."""
        return self.epoch + (time.time() - self.epoch) * self.speed

    def monotonic(self) -> float:
        """Seconds for deadlines and periods: the real monotonic clock at speed 1, else virtual time (the
        processes of an accelerated sandbox share no monotonic origin, only the wall-clock epoch)."""
        return time.monotonic() if self.speed == 1 else self.time()

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long ``virtual_seconds`` of this clock last in real time."""
        return virtual_seconds / self.speed

    def to_json(self) -> dict[str, float]:
        return {"epoch": self.epoch, "speed": self.speed}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> ScaledClock:
        return cls(float(data["epoch"]), float(data.get("speed", 1.0)))


REAL_CLOCK = ScaledClock(0.0, 1.0)
