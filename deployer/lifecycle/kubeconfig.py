"""Fetch a cluster's kubeconfig from its front end (the ``kubeconfig_fetch`` playbook), pointed at the front
end's address and written 0600 on this machine. Called by ``deployer kubeconfig``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deployer.adapters.ansible.inventory import SshTarget, build_inventory, secrets_of
from deployer.adapters.ansible.runner import ProgressEvent, run_playbook
from deployer.errors import RemoteError
from deployer.paths import Paths

PLAYBOOK = "kubeconfig_fetch.yml"


def default_destination(paths: Paths, cluster: str) -> Path:
    return paths.config_dir / "kubeconfig" / f"{cluster}.yaml"


def fetch_kubeconfig(
    paths: Paths,
    cluster: str,
    front: SshTarget,
    *,
    dest: Path | None = None,
    src: str | None = None,
    host_key_checking: bool = True,
    on_event: Callable[[ProgressEvent], None] | None = None,
) -> Path:
    """Copy the front end's kubeconfig to ``dest`` (default under DEPLOYER_HOME); raise on failure."""
    target = (dest or default_destination(paths, cluster)).expanduser().resolve()
    extra = {"kubeconfig_fetch_dest": str(target)}
    if src:
        extra["kubeconfig_fetch_src"] = src
    result = run_playbook(
        PLAYBOOK,
        build_inventory(front, []),
        extra,
        logs_dir=paths.logs_dir,
        on_event=on_event,
        host_key_checking=host_key_checking,
        secrets=secrets_of([front]),
    )
    failure = result.first_failure(front.name)
    if failure is not None or result.returncode != 0:
        why = failure.describe() if failure is not None else f"ansible-playbook exited {result.returncode}"
        raise RemoteError(f"{cluster}: cannot fetch the kubeconfig: {why} (log: {result.log_path})")
    return target
