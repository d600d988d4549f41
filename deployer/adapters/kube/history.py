"""The pods of a live cluster and their runs, for ``deployer trace record`` (``deployer.sim.record``).

``list_pods`` pages through every pod (``limit``/``continue``, as kubectl does, restarting once when the
server expired the continue token with 410 Gone); ``pod_run`` reads one pod's creation, the core's view of
it (requests, owner, labels, start and end) and the one arch it is pinned to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.adapters.kube.convert import pod_from_api
from deployer.core.elasticity.model import Pod
from deployer.core.elasticity.scheduling import ARCH_LABEL, FINISHED_PHASES
from deployer.errors import RemoteError, TransientError

MAX_PAGES = 10_000  # a bound on the paging loop: 5 million pods at the default page size


@dataclass(frozen=True, slots=True)
class PodRun:
    """One pod's life so far: epoch seconds; ``started_at`` None before it ran, ``ended_at`` while it runs."""

    pod: Pod
    created_at: float
    started_at: float | None
    ended_at: float | None
    finished: bool  # Succeeded or Failed
    arch: str | None  # the one architecture it is pinned to, None when it runs anywhere


def list_pods(api_client: client.ApiClient, page_size: int = 500, timeout: float = 30.0) -> list[Any]:
    """Every pod of every namespace, in pages of ``page_size``; raises ``RemoteError``/``TransientError``."""
    api = client.CoreV1Api(api_client)
    host = api_client.configuration.host
    for _attempt in range(2):  # a 410 on a continue token: the list is redone once from the start
        pods: list[Any] = []
        token: str | None = None
        try:
            for _page in range(MAX_PAGES):
                page = api.list_pod_for_all_namespaces(
                    limit=page_size, _continue=token, _request_timeout=timeout
                )
                pods.extend(page.items)
                token = page.metadata._continue
                if not token:
                    return pods
            raise RemoteError(
                f"Kubernetes API at {host}: more than {MAX_PAGES} pages of pods; raise --page-size"
            )
        except ApiException as exc:
            if exc.status == 410 and token:
                continue
            raise RemoteError(
                f"Kubernetes API at {host}: listing pods failed: {exc.status} {exc.reason or ''}".strip(),
                status=exc.status,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(
                f"Kubernetes API at {host} unreachable ({type(exc).__name__}); check that the cluster is up "
                "and that the kubeconfig points at it"
            ) from None
    raise TransientError(f"Kubernetes API at {host}: the pod list kept expiring (410 Gone); try again")


def _arch(pod: Any) -> str | None:
    """The one architecture a pod is pinned to (nodeSelector or a single required In value), else None."""
    spec = pod.spec
    pinned = (spec.node_selector or {}).get(ARCH_LABEL)
    if pinned:
        return str(pinned)
    affinity = spec.affinity.node_affinity if spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    for term in (required.node_selector_terms or ()) if required else ():
        for expr in term.match_expressions or ():
            if expr.key == ARCH_LABEL and expr.operator == "In" and len(expr.values or ()) == 1:
                return str(expr.values[0])
    return None


def pod_run(raw: Any) -> PodRun:
    pod = pod_from_api(raw)
    return PodRun(
        pod=pod,
        created_at=raw.metadata.creation_timestamp.timestamp(),
        started_at=pod.started_at,
        ended_at=pod.finished_at,
        finished=pod.phase in FINISHED_PHASES,
        arch=_arch(raw),
    )
