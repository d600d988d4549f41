"""The dashboard's actions: the same life-cycle use cases the CLI runs, and nothing else.

Scale, destroy and edge joins go through ``deployer.lifecycle.deploy`` and ``deployer.lifecycle.edge``
exactly as ``deployer scale``, ``deployer destroy`` and ``deployer edge add`` do; this module only opens
the deployment (its record, credentials and IM client, as the CLI's ``_open_deployment`` does) and turns
results into one line for the page. When those use cases change signature, this is the one place the
dashboard adapts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.cli.playbooks import front_target
from deployer.errors import RemoteError, UserError
from deployer.lifecycle import create, deploy, edge, session
from deployer.lifecycle.credentials import endpoint_for_record
from deployer.paths import Paths


@contextmanager
def open_deployment(
    paths: Paths, name: str, *, command: str | None = None
) -> Iterator[tuple[DeploymentStore, IMClient, DeploymentRecord]]:
    """As every CLI command opens it: the deployment's own credentials, the record repaired, and for a
    change (``command``) the deployment's lock, so the dashboard and the CLI never write at once."""
    with session.open_deployment(
        paths, name, lambda record: endpoint_for_record(paths, record).client(), command=command
    ) as opened:
        yield opened


def scale(paths: Paths, name: str, group: str, count: int) -> str:
    with open_deployment(paths, name, command="scale (dashboard)") as (store, client, record):
        result = deploy.scale(store, client, record, group=group, count=count)
    if result.added:
        return f"{name}: group {group} adds VM(s) {', '.join(result.added)}"
    if result.removed:
        return f"{name}: group {group} removes VM(s) {', '.join(result.removed)}"
    return f"{name}: group {group} already has {count} VM(s)"


def destroy(paths: Paths, name: str, typed_name: str) -> str:
    """Destroy after the user typed the deployment's name (checked here, not only in the browser)."""
    if typed_name.strip() != name:
        raise UserError(f"type the deployment's name ({name}) to confirm destroying it")
    record = DeploymentStore(paths.state_db).get(name)
    # The CLI's own destroy use case: the lock, the sandbox stopped first, the destroy verified in the IM.
    result = create.destroy_deployment(paths, record)
    if result.destroyed:
        return f"{name}: destroyed {', '.join(result.destroyed)}"
    return f"{name}: was already gone from the IM; record cleaned up"


def add_edge_host(
    paths: Paths,
    name: str,
    host: str,
    *,
    user: str,
    group: str,
    key_file: str | None,
    front: str | None,
    front_user: str,
) -> str:
    """Join one board (``deployer edge add NAME HOST``); ``front`` as ``--front`` (standalone clusters)."""
    key = Path(key_file) if key_file else None
    options = edge.EdgeJoinOptions(user=user, key_file=key, group=group)
    edge.validate_join_options([host], options)
    target = front_target(paths, name, front, front_user, key)
    report = edge.add_edge_hosts(paths, name, [host], target, options)
    failed = report.failed
    if failed:
        reason = failed[0].failure.describe() if failed[0].failure else "failed"
        raise RemoteError(f"{host} did not join {name}: {reason} (log: {report.log_path})")
    return f"{name}: {host} joined as node {report.outcomes[0].node_name or host} of group {group}"
