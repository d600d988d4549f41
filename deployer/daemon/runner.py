"""Wiring a runnable daemon from where its configuration lives; called by the ``deployer daemon`` commands.

``DaemonSources`` says where things come from: a deployment deployer made (its record gives the IM endpoint,
the infrastructure id and, through the TOSCA, the elasticity settings), a ``--config`` file (written on the
front end by the ``elastic_daemon`` Ansible role), or explicit ``--spec``/``--im-url``/``--auth-file``/
``--infra-id`` for a standalone daemon. ``open_daemon`` starts the Kubernetes watch and yields
a ready ``Reconciler``; ``serve`` runs the long-lived loop with metrics and leader election until stopped.
Imports the kubernetes client: the CLI imports this module inside its commands only.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client import ApiClient

from deployer.adapters.im.auth import AuthEntry, load_auth_file
from deployer.adapters.im.client import IMClient
from deployer.adapters.kube import KubeCluster, LeaderElector, make_api_client
from deployer.adapters.state.history import ElasticityHistory
from deployer.adapters.state.locks import deployment_lock
from deployer.adapters.state.nodes import NodeStateStore
from deployer.adapters.state.store import DeploymentStore
from deployer.clock import REAL_CLOCK, ScaledClock
from deployer.core.spec import ClusterSpec, load_spec
from deployer.daemon.config import (
    DaemonPlan,
    RefreshingIMClient,
    daemon_plan,
    edge_boards,
    power_managers,
    spec_from_config,
    spec_from_tosca,
)
from deployer.daemon.credentials import DaemonCredentials, TokenSource
from deployer.daemon.loop import DaemonLoop, LoopStats
from deployer.daemon.metrics import MetricsServer
from deployer.daemon.reconciler import Reconciler
from deployer.errors import TimeoutExpired, UserError
from deployer.paths import Paths

log = logging.getLogger(__name__)

AuthProvider = Callable[[], Sequence[AuthEntry]]


@dataclass(frozen=True)
class DaemonSources:
    cluster: str
    spec_file: Path | None = None
    spec_config: Mapping[str, Any] | None = None  # the embedded elasticity config (``--config`` files)
    im_url: str | None = None
    auth_file: Path | None = None
    infra_id: str | None = None
    insecure: bool = False
    kubeconfig: Path | None = None
    kube_context: str | None = None
    ssh_key: str | None = None
    drain_timeout: float = 120.0
    token_source: TokenSource | None = None  # fills the auth file's token fields with fresh tokens


@dataclass(frozen=True)
class Resolved:
    spec: ClusterSpec
    plan: DaemonPlan
    im_url: str | None
    infra_id: str | None
    auth: AuthProvider | None
    credentials: DaemonCredentials | None = None


def lock_path(paths: Paths, cluster: str) -> Path:
    return paths.state_dir / "daemon" / f"{cluster}.lock"


def resolve(paths: Paths, sources: DaemonSources, *, auth_provider: AuthProvider | None = None) -> Resolved:
    """The spec, the IM endpoint and a provider of fresh IM credentials for ``sources.cluster``.

    ``auth_provider`` overrides where credentials come from (a refreshing OIDC token source); by default
    they are re-read from the auth file or the deployment's profile on every use, so rotated tokens apply.
    """
    record = DeploymentStore(paths.state_db).find(sources.cluster)
    if sources.spec_file is not None:
        spec = load_spec(sources.spec_file, name=sources.cluster)
    elif sources.spec_config is not None:
        spec = spec_from_config(sources.spec_config, sources.cluster)
    elif record is not None:
        spec = spec_from_tosca(record.tosca_redacted, sources.cluster)
    else:
        raise UserError(f"no deployment named {sources.cluster!r}; pass --spec FILE (and the IM flags)")
    im_url = sources.im_url or (record.im_url if record is not None else None)
    infra_id = sources.infra_id or (record.infrastructure_id if record is not None else None)
    auth = auth_provider
    credentials = None
    if sources.token_source is not None:
        if sources.auth_file is None:
            raise UserError(
                "a token source needs the auth file whose token fields it fills: credentials_file in the "
                "config (or --auth-file)"
            )
        credentials = DaemonCredentials(sources.auth_file, sources.token_source)
        auth = credentials.entries
    if auth is None and sources.auth_file is not None:
        auth_file = sources.auth_file
        auth = lambda: load_auth_file(auth_file)  # noqa: E731 - re-read: tokens in the file get rotated
    if auth is None and record is not None:
        from deployer.lifecycle.credentials import endpoint_for_record

        auth = lambda: endpoint_for_record(paths, record, im_url=sources.im_url).entries  # noqa: E731
        if sources.im_url is None:
            im_url = endpoint_for_record(paths, record).im_url  # the local IM may have moved port
    return Resolved(spec, daemon_plan(spec, sources.cluster), im_url, infra_id, auth, credentials)


# How long a daemon round waits for a CLI command that is changing the same deployment (a scale, a
# destroy): past it the round fails with "busy" and the next round tries again.
DAEMON_LOCK_WAIT_S = 30.0


def _deployment_guard(paths: Paths, cluster: str) -> Callable[[], AbstractContextManager[None]]:
    """The deployment's one-writer lock around each IM change, so the daemon and a CLI command on this
    machine never change one deployment at once."""
    return lambda: deployment_lock(paths.locks_dir, cluster, command="daemon run", wait=DAEMON_LOCK_WAIT_S)


def build_reconciler(
    paths: Paths, sources: DaemonSources, resolved: Resolved, cluster: KubeCluster
) -> Reconciler:
    im: IMClient | RefreshingIMClient | None = None
    if resolved.im_url is not None and resolved.credentials is not None:
        # Fresh token before every request, one renewal and retry after a 401.
        im = IMClient(resolved.im_url, (), verify=not sources.insecure, credentials=resolved.credentials)
    elif resolved.im_url is not None and resolved.auth is not None:
        im = RefreshingIMClient(resolved.im_url, resolved.auth, verify=not sources.insecure)
    managers = power_managers(
        resolved.plan.groups,
        im=im,
        infrastructure_id=resolved.infra_id,
        boards=edge_boards(resolved.spec, ssh_key=sources.ssh_key),
        guard=_deployment_guard(paths, sources.cluster),
    )
    store = NodeStateStore(paths.state_db, sources.cluster)
    return Reconciler(
        cluster,
        resolved.plan.groups,
        resolved.plan.settings,
        managers,
        store,
        history=ElasticityHistory(paths.state_db, sources.cluster),
        drain_timeout=sources.drain_timeout,
    )


@contextmanager
def open_daemon(
    paths: Paths,
    sources: DaemonSources,
    *,
    api_client: ApiClient | None = None,
    auth_provider: AuthProvider | None = None,
    sync_timeout: float = 60.0,
) -> Iterator[tuple[Reconciler, KubeCluster, Resolved]]:
    """Resolve, start the watch, wait for it to sync, and yield ``(reconciler, kube_cluster, resolved)``."""
    resolved = resolve(paths, sources, auth_provider=auth_provider)
    if api_client is None:
        api_client = make_api_client(
            str(sources.kubeconfig) if sources.kubeconfig else None, context=sources.kube_context
        )
    with ExitStack() as stack:
        kube = stack.enter_context(KubeCluster(api_client))
        if not kube.wait_synced(sync_timeout):
            raise TimeoutExpired(f"the Kubernetes watch did not sync within {sync_timeout:.0f}s")
        yield build_reconciler(paths, sources, resolved, kube), kube, resolved


@contextmanager
def leadership(
    reconciler: Reconciler,
    kube: KubeCluster,
    resolved: Resolved,
    namespace: str,
    *,
    lease_seconds: float = 15,
) -> Iterator[LeaderElector]:
    """Compete for the Lease ``deployer-daemon-<cluster>`` in ``namespace``; the reconciler acts only while
    this replica holds it (checked before every side effect). Released on exit, so a standby takes over
    at once; a crashed holder's Lease expires after ``lease_seconds``."""
    if lease_seconds < 2:
        raise UserError(f"--lease-seconds must be at least 2 (got {lease_seconds:g})")
    identity = f"{socket.gethostname()}-{os.getpid()}"
    leader = LeaderElector(
        kube.api_client,
        name=f"deployer-daemon-{resolved.plan.cluster}",
        namespace=namespace,
        identity=identity,
        lease_duration=lease_seconds,
        renew_deadline=lease_seconds * 2 / 3,
        retry_period=max(1.0, lease_seconds * 2 / 15),
    ).start()
    reconciler.follow_leadership(lambda: leader.is_leader)
    try:
        yield leader
    finally:
        leader.stop()


def serve(
    reconciler: Reconciler,
    kube: KubeCluster,
    resolved: Resolved,
    stop: threading.Event,
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    leader_namespace: str | None = None,
    lease_seconds: float = 15,
    clock: ScaledClock = REAL_CLOCK,
) -> LoopStats:
    """Run the event loop until ``stop`` is set. With ``leader_namespace``, compete for the Lease
    ``deployer-daemon-<cluster>`` there and act only while leading. ``clock`` runs faster than real time
    against an accelerated sandbox cluster."""
    with ExitStack() as stack:
        if resolved.credentials is not None:
            stack.enter_context(resolved.credentials.refreshing(reconciler.metrics))
        if metrics_port is not None:
            server = MetricsServer(reconciler.metrics, metrics_port, metrics_host).start()
            stack.callback(server.stop)
            log.info("metrics on http://%s:%d/metrics", metrics_host, server.port)
        leader = None
        if leader_namespace is not None:
            leader = stack.enter_context(
                leadership(reconciler, kube, resolved, leader_namespace, lease_seconds=lease_seconds)
            )
        loop = DaemonLoop(
            reconciler, kube, resolved.plan.loop, leader=leader, clock=clock.monotonic, wall_clock=clock.time
        )
        return loop.run(stop)
