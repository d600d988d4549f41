"""The loop's timing policies, driven with explicit clocks: the batcher and the exponential backoff."""

from __future__ import annotations

import pytest

from deployer.core.elasticity.batching import Batcher
from deployer.daemon.timing import Backoff


@pytest.mark.parametrize(
    ("events", "check_at", "ready"),
    [
        ([], 100.0, False),  # nothing waiting
        ([0.0], 0.5, False),  # still inside the idle window
        ([0.0], 1.0, True),  # 1 s without a new event
        ([0.0, 0.8], 1.5, False),  # the second event extended the idle window to 1.8
        ([0.0, 0.8], 1.8, True),
        ([0.0, 0.9, 1.8, 2.7, 3.6, 4.5, 5.4, 6.3, 7.2, 8.1, 9.0, 9.9], 9.95, False),
        ([0.0, 0.9, 1.8, 2.7, 3.6, 4.5, 5.4, 6.3, 7.2, 8.1, 9.0, 9.9], 10.0, True),  # the 10 s cap
    ],
)
def test_batcher_fires_after_idle_or_max(events: list[float], check_at: float, ready: bool) -> None:
    batcher = Batcher(idle=1.0, maximum=10.0)
    for at in events:
        batcher.add(at)
    assert batcher.ready(check_at) is ready


def test_batcher_reset_starts_a_new_batch() -> None:
    batcher = Batcher(idle=1.0, maximum=10.0)
    batcher.add(0.0)
    batcher.reset()
    assert batcher.deadline() is None and not batcher.pending
    batcher.add(50.0)
    assert batcher.deadline() == pytest.approx(51.0)


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=1.0, factor=2.0, maximum=5.0)
    assert backoff.current() == 0.0
    assert [backoff.failure() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.success()
    assert backoff.current() == 0.0
    assert backoff.failure() == 1.0
