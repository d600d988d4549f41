"""Opening a deployment to read or change it: the record, an IM client, and the one-writer lock.

Called by the CLI (``deployer.cli.lifecycle_cmds``) and the dashboard (``deployer.ui.actions``), so both
follow the same rules: a command that changes a deployment holds its lock (``deployer.adapters.state.
locks``) throughout; a reader takes the lock only if it is free, and only then repairs the record (adopts
a create interrupted before the IM answered; with ``settle``, destroys duplicates carrying its tag).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.locks import deployment_lock, holder_of
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.errors import Busy, TransientError
from deployer.lifecycle.deploy import recover_submission
from deployer.lifecycle.identity import settle_duplicates, settled_message
from deployer.paths import Paths

# A waiting writer waits at most this long: a holder still running after an hour is stuck, not busy.
WAIT_LOCK_MAX_S = 3600.0


@contextmanager
def locked(paths: Paths, name: str, command: str, *, wait: bool = False) -> Iterator[None]:
    """Hold deployment ``name``'s lock; ``Busy`` at once (or after ``WAIT_LOCK_MAX_S`` with ``wait``)."""
    with deployment_lock(paths.locks_dir, name, command=command, wait=WAIT_LOCK_MAX_S if wait else 0.0):
        yield


@contextmanager
def open_deployment(
    paths: Paths,
    name: str,
    client_for: Callable[[DeploymentRecord], IMClient],
    *,
    command: str | None = None,
    wait_lock: bool = False,
    settle: bool = False,
    warn: Callable[[str], None] = lambda message: None,
) -> Iterator[tuple[DeploymentStore, IMClient, DeploymentRecord]]:
    """The deployment's store, an IM client for it, and its record with the infrastructure id resolved.

    ``command``: the caller changes the deployment and holds its lock for the whole block.
    """
    store = DeploymentStore(paths.state_db)
    record = store.get(name)
    with ExitStack() as stack:
        if command is not None:
            stack.enter_context(locked(paths, name, command, wait=wait_lock))
            record = store.get(name)
        client = stack.enter_context(client_for(record))
        can_repair = True
        with ExitStack() as repair:
            if command is None:
                try:
                    repair.enter_context(locked(paths, name, "status"))
                except Busy:
                    can_repair = False
            if can_repair:
                record = recover_submission(store, client, store.get(name))
                if settle:
                    try:
                        settled = settle_duplicates(store, client, record)
                    except TransientError as err:
                        if command is not None:
                            raise
                        warn(f"{name}: cannot look for duplicates now ({err})")  # reading goes on
                    else:
                        for line in settled_message(name, settled):
                            warn(line)
                        record = settled.record
        if not record.infrastructure_id:
            holder = holder_of(paths.locks_dir, name) or "another deployer command"
            raise Busy(f"deployment {name!r} is being created by {holder}; try again when it is done")
        yield store, client, record
