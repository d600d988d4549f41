"""The daemon's view of a Kubernetes cluster: a watched snapshot plus the few writes an autoscaler makes.

Called by ``deployer.daemon`` (reconcile loop, actuator) and by ``deployer daemon explain``. Built on the
official ``kubernetes`` client (v37). Reads come from a local cache kept by list+watch (informer.py), so
``snapshot()`` costs no API call; writes (cordon, drain through the eviction API, node delete) go to the
API server and map its errors onto ``deployer.errors``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from deployer.adapters.kube.convert import (
    DEFAULT_GROUP_LABEL,
    budget_from_api,
    node_from_api,
    owner_kind,
    pod_from_api,
)
from deployer.adapters.kube.informer import Reflector
from deployer.core.elasticity.model import DisruptionBudget, OwnerKind, Pod, Snapshot
from deployer.errors import (
    AuthError,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    TransientError,
    UserError,
)
from deployer.logs import register_secret

log = logging.getLogger(__name__)

PodListener = Callable[[Pod], None]
_TERMINAL_PHASES = ("Succeeded", "Failed")
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
_DIES_WITH_NODE = (OwnerKind.DAEMON_SET, OwnerKind.MIRROR)
# On a Node being removed: how far the removal got. It lives in the cluster, not in one replica's database,
# so whichever daemon leads next resumes it (and nothing else ever leaves a node cordoned).
SCALE_DOWN_ANNOTATION = "deployer.io/scale-down"
DRAINING, POWERING_OFF = "draining", "powering-off"


def make_api_client(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    host: str | None = None,
    token: str | None = None,
    ca_file: str | None = None,
    verify: bool = True,
) -> client.ApiClient:
    """A configured ``ApiClient``.

    Explicit ``host`` (+ ``token``), else ``kubeconfig``, else in-cluster (service account) when running in
    a pod, else the default kubeconfig (``$KUBECONFIG``, ``~/.kube/config``).
    """
    try:
        if host is not None:
            configuration = client.Configuration(host=host)
            configuration.verify_ssl = verify
            configuration.ssl_ca_cert = ca_file
            if token:
                register_secret(token)
                configuration.api_key = {"authorization": token}
                configuration.api_key_prefix = {"authorization": "Bearer"}
            return client.ApiClient(configuration)
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(
            config_file=str(kubeconfig) if kubeconfig is not None else None,
            context=context,
            persist_config=False,
        )
    except (ConfigException, OSError) as exc:
        where = kubeconfig or "the default kubeconfig"
        raise UserError(f"cannot load Kubernetes credentials from {where}: {exc}; pass --kubeconfig") from exc


def translate_api_error(exc: BaseException, action: str) -> RemoteError:
    """The ``deployer.errors`` counterpart of a client failure while doing ``action``."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = f"Kubernetes API: {action}: {status} {exc.reason or ''}".strip()
        if status == 404:
            return RemoteNotFound(message, status=status)
        if status == 409:
            return RemoteConflict(message, status=status)
        if status in (401, 403):
            return AuthError(message + " (check the kubeconfig credentials and RBAC)", status=status)
        if status >= 500 or status == 429 or status == 0:
            return TransientError(message, status=status)
        return RemoteError(message, status=status)
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return TransientError(f"Kubernetes API unreachable: {action}: {exc}")
    return RemoteError(f"Kubernetes API: {action}: {exc}")


def _pod_name(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _must_leave(pod: Any) -> bool:
    """A pod a drain evicts: not a DaemonSet or mirror pod (they die with the node), not finished."""
    finished = pod.status is not None and pod.status.phase in _TERMINAL_PHASES
    return not finished and owner_kind(pod.metadata) not in _DIES_WITH_NODE


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What ``drain()`` did. ``complete`` means every evictable pod left the node: safe to power it off."""

    node: str
    evicted: tuple[str, ...] = ()  # namespace/name, eviction accepted (201) or pod already gone
    skipped: tuple[str, ...] = ()  # DaemonSet and mirror pods: they die with the node
    blocked: tuple[str, ...] = ()  # a PodDisruptionBudget refused (429) after the bounded retries
    remaining: tuple[str, ...] = ()  # evicted but still on the node when the timeout ran out
    complete: bool = False
    reason: str = ""


class KubeCluster:
    """A watched Kubernetes cluster.

    Life cycle: ``start()`` launches three watch threads (pods, nodes, PDBs); ``wait_synced(timeout)``
    blocks until each has listed once; ``stop()`` ends them (bounded). Use as a context manager.

    ``group_label`` is the node label whose value names the node group (``deployer.io/group=<group>``).
    Listeners added with ``add_unschedulable_listener`` are called (on a watch thread; keep them quick)
    once for each pod that newly becomes Pending with PodScheduled=False/Unschedulable, including those
    found by the first list: the daemon batches these into one decision. Writes raise
    ``deployer.errors`` (RemoteNotFound, RemoteConflict, AuthError, TransientError, RemoteError).
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        group_label: str = DEFAULT_GROUP_LABEL,
        watch_timeout: int = 60,
        request_timeout: float = 30.0,
    ) -> None:
        self.api_client = api_client
        self.group_label = group_label
        self.request_timeout = request_timeout  # every write and fresh read: a dead server cannot hang us
        self.core = client.CoreV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self._listeners: list[PodListener] = []
        self._listeners_lock = threading.Lock()
        self.pods: Reflector[Pod] = Reflector(
            "pods",
            self.core.list_pod_for_all_namespaces,
            pod_from_api,
            on_change=self._pod_changed,
            watch_timeout=watch_timeout,
        )
        self.nodes: Reflector[Any] = Reflector(
            "nodes", self.core.list_node, lambda node: node, watch_timeout=watch_timeout
        )
        self.budgets: Reflector[DisruptionBudget] = Reflector(
            "pdbs",
            self.policy.list_pod_disruption_budget_for_all_namespaces,
            budget_from_api,
            watch_timeout=watch_timeout,
        )

    # -- life cycle -------------------------------------------------------------------------------------

    def start(self) -> KubeCluster:
        for reflector in self._reflectors:
            reflector.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        for reflector in self._reflectors:
            reflector.stop(timeout)

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _reflectors(self) -> tuple[Reflector[Any], ...]:
        return (self.pods, self.nodes, self.budgets)

    @property
    def synced(self) -> bool:
        """True once pods, nodes and PDBs have each been listed: the planner may trust the snapshot."""
        return all(reflector.synced.is_set() for reflector in self._reflectors)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for reflector in self._reflectors:
            if not reflector.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    # -- reads ------------------------------------------------------------------------------------------

    def finished_pods(self) -> list[Pod]:
        """Pods of the watch cache in a terminal phase: what the run-time model learns from."""
        return [pod for pod in self.pods.items() if pod.phase in _TERMINAL_PHASES]

    def snapshot(self, group_label: str | None = None) -> Snapshot:
        """The cluster now, as the core's frozen ``Snapshot`` (no API call).

        Pods in a terminal phase (Succeeded/Failed) are left out: they hold no resources and block
        nothing. ``synced`` is False until every watch has listed once.
        """
        label = group_label or self.group_label
        synced = self.synced  # read before the caches: a snapshot never claims more than it holds
        return Snapshot(
            nodes=tuple(sorted((node_from_api(n, label) for n in self.nodes.items()), key=lambda n: n.name)),
            pods=tuple(
                sorted(
                    (pod for pod in self.pods.items() if pod.phase not in _TERMINAL_PHASES),
                    key=lambda pod: (pod.namespace, pod.name),
                )
            ),
            budgets=tuple(self.budgets.items()),
            synced=synced,
        )

    def node_objects(self) -> list[Any]:
        """The raw ``V1Node`` objects of the watch cache (no API call): providerID, labels, addresses."""
        return self.nodes.items()

    def add_unschedulable_listener(self, listener: PodListener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def _pod_changed(self, key: str, old: Pod | None, new: Pod | None) -> None:
        if new is None or new.phase != "Pending" or not new.unschedulable:
            return
        if old is not None and old.unschedulable and old.phase == "Pending":
            return  # already reported
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(new)

    # -- writes -----------------------------------------------------------------------------------------

    def cordon(self, node: str, *, scale_down: str | None = None) -> None:
        """Mark ``node`` unschedulable (idempotent); with ``scale_down``, annotate in the same patch why
        (``SCALE_DOWN_ANNOTATION``), so the cordon and its reason can never be seen apart."""
        patch: dict[str, Any] = {"spec": {"unschedulable": True}}
        if scale_down is not None:
            patch["metadata"] = {"annotations": {SCALE_DOWN_ANNOTATION: scale_down}}
        self._patch_node(node, patch, "cordon")

    def uncordon(self, node: str) -> None:
        """Make ``node`` schedulable again and drop any scale-down mark (idempotent)."""
        patch = {"spec": {"unschedulable": None}, "metadata": {"annotations": {SCALE_DOWN_ANNOTATION: None}}}
        self._patch_node(node, patch, "uncordon")

    def mark_scale_down(self, node: str, phase: str) -> None:
        """Record on the Node how far its removal got (``DRAINING``, ``POWERING_OFF``)."""
        self._patch_node(node, {"metadata": {"annotations": {SCALE_DOWN_ANNOTATION: phase}}}, "annotate")

    def _patch_node(self, node: str, patch: dict[str, Any], action: str) -> None:
        try:
            self.core.patch_node(node, patch, _request_timeout=self.request_timeout)
        except Exception as exc:
            raise translate_api_error(exc, f"{action} node {node}") from exc

    def delete_node(self, node: str) -> None:
        """Delete the Node object after its machine is gone. Already gone (404) counts as done."""
        try:
            self.core.delete_node(node, _request_timeout=self.request_timeout)
        except Exception as exc:
            error = translate_api_error(exc, f"delete node {node}")
            if not isinstance(error, RemoteNotFound):
                raise error from exc

    def pods_on_node(self, node: str) -> list[Any]:
        """The raw ``V1Pod`` objects bound to ``node``, read from the API server (not the cache)."""
        try:
            return list(
                self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={node}", _request_timeout=self.request_timeout
                ).items
                or ()
            )
        except Exception as exc:
            raise translate_api_error(exc, f"list pods on node {node}") from exc

    def drain(
        self,
        node: str,
        *,
        timeout: float,
        retry_interval: float = 1.0,
        max_attempts: int = 3,
        before_write: Callable[[], None] | None = None,
    ) -> DrainResult:
        """Cordon ``node`` then evict its pods through the eviction API, honouring PodDisruptionBudgets.

        DaemonSet and mirror pods are skipped. Pods annotated ``safe-to-evict: "false"`` make the drain
        refuse before it cordons (defence in depth: the planner should never pick such a node). A pod
        whose eviction the API refuses with 429 (a PDB) is retried up to ``max_attempts`` times
        ``retry_interval`` apart; if it is still refused the drain stops there and reports it in
        ``blocked``: the caller must NOT power off or delete the node (it stays cordoned; ``uncordon``
        it to give it back). Then waits, until ``timeout``, for the evicted pods to leave. Bare pods
        (no controller) are evicted like the rest. Never deletes the node. ``before_write`` runs before the
        cordon and before each eviction; it raises to stop the drain (a replica that lost its leadership).
        """
        check = before_write or (lambda: None)
        deadline = time.monotonic() + timeout
        protected = sorted(
            _pod_name(pod)
            for pod in self.pods_on_node(node)
            if _must_leave(pod) and (pod.metadata.annotations or {}).get(SAFE_TO_EVICT) == "false"
        )
        if protected:
            return DrainResult(
                node, blocked=tuple(protected), reason=f"{SAFE_TO_EVICT}=false on {protected[0]}"
            )
        check()
        self.cordon(node)
        evicted: list[str] = []
        skipped: list[str] = []
        for pod in self.pods_on_node(node):
            name = _pod_name(pod)
            if owner_kind(pod.metadata) in _DIES_WITH_NODE:
                skipped.append(name)
                continue
            if not _must_leave(pod):
                continue
            check()
            if not self._evict(pod, deadline, retry_interval, max_attempts):
                log.warning("drain of %s stopped: a PodDisruptionBudget blocks evicting %s", node, name)
                return DrainResult(
                    node,
                    evicted=tuple(evicted),
                    skipped=tuple(skipped),
                    blocked=(name,),
                    reason=f"PodDisruptionBudget blocks evicting {name}",
                )
            evicted.append(name)
        remaining = self._wait_gone(node, set(evicted), deadline, retry_interval)
        return DrainResult(
            node,
            evicted=tuple(evicted),
            skipped=tuple(skipped),
            remaining=tuple(sorted(remaining)),
            complete=not remaining,
            reason=f"{len(remaining)} evicted pod(s) still on the node at the timeout" if remaining else "",
        )

    def _evict(self, pod: Any, deadline: float, retry_interval: float, max_attempts: int) -> bool:
        """True once the eviction is accepted (or the pod is already gone); False if a PDB keeps refusing."""
        meta = pod.metadata
        body = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=meta.name, namespace=meta.namespace),
            api_version="policy/v1",
            kind="Eviction",
        )
        for attempt in range(1, max_attempts + 1):
            try:
                self.core.create_namespaced_pod_eviction(
                    meta.name, meta.namespace, body, _request_timeout=self.request_timeout
                )
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return True
                if exc.status != 429:
                    raise translate_api_error(exc, f"evict pod {meta.namespace}/{meta.name}") from exc
            except Exception as exc:
                raise translate_api_error(exc, f"evict pod {meta.namespace}/{meta.name}") from exc
            if attempt == max_attempts or time.monotonic() + retry_interval > deadline:
                return False
            time.sleep(retry_interval)
        return False

    def _wait_gone(self, node: str, names: set[str], deadline: float, interval: float) -> set[str]:
        while True:
            present = {f"{p.metadata.namespace}/{p.metadata.name}" for p in self.pods_on_node(node)}
            remaining = names & present
            if not remaining or time.monotonic() >= deadline:
                return remaining
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
