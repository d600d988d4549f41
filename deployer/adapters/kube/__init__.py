"""The Kubernetes adapter of the elasticity daemon, on the official ``kubernetes`` client (v37).

Public API (used by ``deployer.daemon`` and the ``daemon`` CLI commands):
- ``make_api_client(kubeconfig=None, *, context=None, host=None, token=None, ...)`` -> ``ApiClient``;
- ``KubeCluster(api_client, *, group_label="deployer.io/group")``: watched snapshot, unschedulable-pod
  listener, ``cordon``/``uncordon``/``drain``/``delete_node``;
- ``DrainResult``; ``LeaderElector`` (Lease-based leader election);
- ``translate_api_error`` and the exact quantity parsers in ``convert``.
"""

from deployer.adapters.kube.client import DrainResult, KubeCluster, make_api_client, translate_api_error
from deployer.adapters.kube.convert import DEFAULT_GROUP_LABEL, cpu_millicores, memory_mib, parse_quantity
from deployer.adapters.kube.leader import LeaderElector

__all__ = [
    "DEFAULT_GROUP_LABEL",
    "DrainResult",
    "KubeCluster",
    "LeaderElector",
    "cpu_millicores",
    "make_api_client",
    "memory_mib",
    "parse_quantity",
    "translate_api_error",
]
