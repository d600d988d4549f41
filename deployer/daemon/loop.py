"""The long-running elasticity daemon: event-driven reconcile rounds with batching, resync and backoff.

Called by ``deployer daemon run`` (without ``--once``). Each new unschedulable pod reported by the Kubernetes
watch starts (or extends) a batch; the batch fires after ``batch_idle`` seconds without new events or
``batch_max`` seconds after its first event. A periodic resync runs a round anyway (idle scale-down, boot
timeouts). A failed round (IM 500, API down) is logged and retried after an exponential backoff; the loop
itself never dies of it. With leader election, only the leader acts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from deployer.core.elasticity.batching import Batcher
from deployer.core.elasticity.model import Pod
from deployer.daemon.reconciler import Reconciler
from deployer.daemon.timing import Backoff
from deployer.errors import is_transient

log = logging.getLogger(__name__)


class PodEvents(Protocol):
    def add_unschedulable_listener(self, listener: Callable[[Pod], None]) -> None: ...


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...


@dataclass
class LoopSettings:
    batch_idle: float = 1.0
    batch_max: float = 10.0
    resync_period: float = 30.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0


@dataclass
class LoopStats:
    rounds: int = 0
    failures: int = 0
    batches: int = 0  # rounds triggered by pending-pod events (the others are resyncs and retries)
    delays: list[float] = field(default_factory=list)  # backoff delays chosen after failures


class DaemonLoop:
    def __init__(
        self,
        reconciler: Reconciler,
        events: PodEvents,
        settings: LoopSettings | None = None,
        *,
        leader: Leadership | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._reconciler = reconciler
        self.settings = settings or LoopSettings()
        self._leader = leader
        self._clock = clock
        self._wall = wall_clock
        self._events: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._batcher = Batcher(self.settings.batch_idle, self.settings.batch_max)
        self._backoff = Backoff(base=self.settings.backoff_base, maximum=self.settings.backoff_max)
        self.stats = LoopStats()
        events.add_unschedulable_listener(self._on_pending)

    def _on_pending(self, pod: Pod) -> None:
        self._events.put(pod.uid)

    def run(self, stop: threading.Event) -> LoopStats:
        """Run rounds until ``stop`` is set. The first round runs at once."""
        next_resync = self._clock()
        retry_at = 0.0  # after a failure, nothing runs before this
        while not stop.is_set():
            due = self._batcher.deadline()
            wake = max(min(next_resync, due) if due is not None else next_resync, retry_at)
            self._collect(stop, until=wake, not_before=retry_at)
            now = self._clock()
            batch_due = self._batcher.ready(now)
            if stop.is_set() or now < retry_at or not (batch_due or now >= next_resync):
                continue
            self._batcher.reset()
            if self._leader is not None and not self._leader.is_leader:
                log.debug("not the leader: skipping this round")
                next_resync = now + self.settings.resync_period
                continue
            if batch_due:
                self.stats.batches += 1
            delay = self._round()
            retry_at = now + delay
            # After a failure the next round is the retry; after a success, the next resync.
            next_resync = now + (delay or self.settings.resync_period)
        return self.stats

    def _collect(self, stop: threading.Event, *, until: float, not_before: float) -> None:
        """Wait until ``until`` for pending-pod events, feeding them to the batcher; wake early when a batch
        becomes due (but never before ``not_before``) or ``stop`` is set (checked at least every 0.2 s)."""
        while not stop.is_set():
            now = self._clock()
            due = self._batcher.deadline()
            wake = until if due is None else min(until, max(due, not_before))
            if now >= wake:
                return
            try:
                self._events.get(timeout=min(wake - now, 0.2))
            except queue.Empty:
                continue
            self._batcher.add(self._clock())

    def _round(self) -> float:
        """Run one round; return how long to wait before the next may run (0 after a success)."""
        self.stats.rounds += 1
        try:
            outcome = self._reconciler.run_once(self._wall())
        except Exception as err:  # the loop must survive anything a round throws
            return self._failed(err)
        if outcome.errors:
            return self._failed(outcome.errors[0], partial=True)
        self._backoff.success()
        return 0.0

    def _failed(self, err: Exception, *, partial: bool = False) -> float:
        self.stats.failures += 1
        delay = self._backoff.failure()
        self.stats.delays.append(delay)
        kind = "transient" if is_transient(err) else type(err).__name__
        what = "an action of the round" if partial else "the round"
        log.warning("%s failed (%s): %s; next try in %.1fs", what, kind, err, delay)
        self._reconciler.metrics.inc("deployer_reconcile_errors_total", error=type(err).__name__)
        if not is_transient(err) and not partial:
            log.debug("round failure details", exc_info=err)
        return delay
