"""Leader election on a coordination.k8s.io/v1 Lease, so that only one daemon replica acts.

Called by the daemon when it runs in-cluster with several replicas. Reuses the official client's
``kubernetes.leaderelection`` (its acquire/renew/expiry decision) and adds what a daemon needs and the
pinned client (v36) lacks: a lock on a Lease (v36 only ships a ConfigMap lock; v37's ``LeaseLock``
builds its own ApiClient from the global default configuration), loops that stop on an Event instead
of sleeping forever, invalid timings that raise instead of ``sys.exit``, and a clean stop that releases
the Lease so that a standby takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord

log = logging.getLogger(__name__)


class _LeaseLock:
    """The lock interface ``LeaderElection`` expects (get/create/update), stored in a Lease's spec.

    ``get`` returns ``(True, record)`` or ``(False, ApiException)``; ``update`` replaces the Lease with the
    resourceVersion last read, so two candidates racing for an expired Lease cannot both win (409).
    """

    def __init__(
        self, api: client.CoordinationV1Api, name: str, namespace: str, identity: str, timeout: float
    ) -> None:
        self.api = api
        self.timeout = timeout  # per request: a hung API server must not outlast the renew deadline
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease: client.V1Lease | None = None  # as last read or written

    def get(self, name: str, namespace: str) -> tuple[bool, object]:
        try:
            self.lease = self.api.read_namespaced_lease(name, namespace, _request_timeout=self.timeout)
        except ApiException as exc:
            return False, exc
        spec = self.lease.spec or client.V1LeaseSpec()
        return True, LeaderElectionRecord(
            spec.holder_identity,
            str(spec.lease_duration_seconds) if spec.lease_duration_seconds else None,
            _record_time(spec.acquire_time),
            _record_time(spec.renew_time),
        )

    def create(self, name: str, namespace: str, election_record: LeaderElectionRecord) -> bool:
        body = client.V1Lease(metadata=client.V1ObjectMeta(name=name), spec=_spec(election_record))
        try:
            self.lease = self.api.create_namespaced_lease(namespace, body, _request_timeout=self.timeout)
        except ApiException as exc:
            log.info("could not create lease %s/%s: %s", namespace, name, exc.reason)
            return False
        return True

    def update(self, name: str, namespace: str, updated_record: LeaderElectionRecord) -> bool:
        if self.lease is None:
            return False
        self.lease.spec = _spec(updated_record)
        try:
            self.lease = self.api.replace_namespaced_lease(
                name, namespace, self.lease, _request_timeout=self.timeout
            )
        except ApiException as exc:
            log.info("could not update lease %s/%s: %s", namespace, name, exc.reason)
            return False
        return True


def _spec(record: LeaderElectionRecord) -> client.V1LeaseSpec:
    return client.V1LeaseSpec(
        holder_identity=record.holder_identity,
        lease_duration_seconds=int(float(record.lease_duration)),
        acquire_time=_wire_time(record.acquire_time),
        renew_time=_wire_time(record.renew_time),
    )


def _wire_time(record_time: str) -> datetime:
    # LeaderElection writes str(datetime.fromtimestamp(...)): naive local time. The Lease is shared with
    # other processes, so store the real instant in UTC.
    return datetime.fromisoformat(record_time).astimezone(timezone.utc)


def _record_time(value: datetime | None) -> str | None:
    return str(value.astimezone().replace(tzinfo=None)) if value is not None else None


class _StoppableElection(leaderelection.LeaderElection):
    """The client's election, with every sleep replaced by a wait on ``stop``."""

    def __init__(self, election_config: electionconfig.Config, stop: threading.Event) -> None:
        super().__init__(election_config)
        self._stop = stop

    def acquire(self) -> bool:
        while not self._stop.is_set():
            if self._try(self.try_acquire_or_renew):
                return True
            self._stop.wait(self.election_config.retry_period)
        return False

    def renew_loop(self, leading_failed: threading.Event | None = None) -> None:
        # ``leading_failed`` exists for v37's signature; our on-started callback only sets an Event.
        cfg = self.election_config
        while not self._stop.is_set():
            deadline = time.monotonic() + cfg.renew_deadline
            renewed = False
            while not renewed and time.monotonic() < deadline and not self._stop.is_set():
                renewed = self._try(self.try_acquire_or_renew)
                if not renewed:
                    self._stop.wait(cfg.retry_period)
            if not renewed:
                return
            self._stop.wait(cfg.retry_period)

    @staticmethod
    def _try(step: Callable[[], object]) -> bool:
        try:
            return bool(step())
        except Exception as exc:  # an unreachable API server: retry (a leader only until its deadline)
            log.warning("lease update failed: %s", exc)
            return False


class LeaderElector:
    """Compete for the Lease ``namespace/name`` as ``identity``.

    ``start()`` runs the election on a background thread; ``is_leader`` tells the daemon whether it may
    act right now (check it before every side effect); ``stop()`` ends the election and, if leading,
    releases the Lease. Timings are in whole seconds (the client requires retry_period >= 1) with
    ``lease_duration > renew_deadline > 1.2 * retry_period``.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
    ) -> None:
        if not (lease_duration > renew_deadline > 1.2 * retry_period and retry_period >= 1):
            raise ValueError(
                "leader election needs lease_duration > renew_deadline > 1.2 * retry_period >= 1.2 s, got "
                f"{lease_duration}/{renew_deadline}/{retry_period}"
            )
        self.identity = identity
        self._api = client.CoordinationV1Api(api_client)
        self._lock = _LeaseLock(self._api, name, namespace, identity, timeout=retry_period)
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._thread: threading.Thread | None = None
        self._config = electionconfig.Config(
            lock=self._lock,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            onstarted_leading=self._leading.set,
            onstopped_leading=self._leading.clear,
        )

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_for_leadership(self, timeout: float) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> LeaderElector:
        if self._thread is not None:
            raise RuntimeError("leader election already started")
        self._thread = threading.Thread(target=self._run, name="kube-leader-election", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Lost leadership goes back to competing as a follower until stopped.
        while not self._stop.is_set():
            try:
                _StoppableElection(self._config, self._stop).run()
            except Exception:  # never let the election thread die: that would silently end leadership
                log.exception("leader election failed; competing again")
                self._stop.wait(self._config.retry_period)
            self._leading.clear()

    def stop(self, *, release: bool = True, timeout: float = 10.0) -> None:
        """Stop competing. ``release=False`` leaves the Lease to expire (what a crash looks like)."""
        was_leader = self.is_leader
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._leading.clear()
        if release and was_leader:
            self._release()

    def _release(self) -> None:
        lease = self._lock.lease
        if lease is None or lease.spec is None or lease.spec.holder_identity != self.identity:
            return
        # An empty holder lets a follower take the Lease at its next try instead of after lease_duration.
        lease.spec.holder_identity = None
        try:
            self._api.replace_namespaced_lease(
                lease.metadata.name, lease.metadata.namespace, lease, _request_timeout=self._lock.timeout
            )
        except Exception as exc:  # best effort: the Lease expires by itself anyway
            log.info("could not release lease %s: %s", lease.metadata.name, exc)
