"""CLI helpers shared by the commands that run our playbooks (``edge``, ``daemon install``, ``create``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.cli import output

if TYPE_CHECKING:
    from deployer.adapters.ansible.inventory import SshTarget
    from deployer.adapters.ansible.runner import ProgressEvent
    from deployer.paths import Paths

FRONT_HELP = "Front-end address to use instead of the cluster's IM outputs (standalone clusters, labs)."
INSECURE_HOST_KEYS_HELP = "Skip SSH host key checking for this run (lab and test hosts whose keys change)."


def front_target(paths: Paths, cluster: str, front: str | None, user: str, key: Path | None) -> SshTarget:
    """``--front`` when given, else the deployment's front end from its IM outputs (never a Dummy VM)."""
    from deployer.lifecycle import edge

    if front:
        return edge.explicit_front(front, user=user, key_file=key)
    return edge.deployment_front(paths, cluster)


def load_vars_file(path: Path | None) -> dict[str, Any]:
    """``--vars-file``: a YAML mapping of extra role variables."""
    if path is None:
        return {}
    import yaml

    from deployer.errors import UserError

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"--vars-file {path}: {err}") from err
    if not isinstance(data, dict):
        raise UserError(f"--vars-file {path}: expected a mapping of variable names to values")
    return data


def playbook_progress(verbose: int) -> Callable[[ProgressEvent], None]:
    """Per-host, per-task progress on stderr: plays, changes and failures (every task with -v)."""

    def show(event: ProgressEvent) -> None:
        if event.kind == "play":
            output.info(f"== {event.play}")
        elif event.kind == "result":
            if event.status in ("failed", "unreachable"):
                output.warn(f"{event.host}: {event.status}: {event.task}: {event.message}")
            elif event.status == "changed" or verbose:
                output.info(f"  {event.host}: {event.status}: {event.task}")

    return show
