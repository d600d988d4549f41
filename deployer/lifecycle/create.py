"""The create and destroy use cases of one deployment, from "spec file + flags" to a followed cluster.

Called by ``deployer create``/``deployer destroy`` (``deployer.cli.lifecycle_cmds``) and by classes
(``deployer.lifecycle.classroom``), so both share exactly one create path. Nothing here prints: progress
and warnings go to the callbacks in ``CreateHooks``; the result is a plain value.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.paths import Paths

if TYPE_CHECKING:
    from deployer.adapters.im.client import IMClient, InfraState
    from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
    from deployer.errors import RemoteError
    from deployer.lifecycle.deploy import DestroyResult
    from deployer.lifecycle.oscar import Applied


INSECURE_REMEMBERED = "not verifying the IM's TLS certificate (--insecure was given at create)"


def _ignore(*_: object) -> None:
    return None


@dataclass(frozen=True)
class CreateHooks:
    """Where a create reports what happens (all optional)."""

    warn: Callable[[str], None] = _ignore
    # Called right before the create request leaves; raising there stops the create with nothing submitted.
    before_submit: Callable[[], None] = _ignore
    # The record once the IM accepted the create (its infrastructure id is known), and the IM's URL.
    submitted: Callable[[DeploymentRecord, str], None] = _ignore
    change: Callable[[InfraState | None, InfraState], None] = _ignore
    unreachable: Callable[[RemoteError], None] = _ignore
    # Waits between state polls; a caller that wants to cancel a follow raises from it.
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class CreateResult:
    name: str
    im_url: str
    infrastructure_id: str | None = None
    state: str | None = None
    vm_count: int = 0
    outputs: dict[str, Any] = field(default_factory=dict)  # masked unless show_secrets
    simulated: bool = False
    elasticity: bool = False
    # --dry-run: the TOSCA (redacted) and the IM's estimate; nothing was created.
    tosca_redacted: str | None = None
    estimate: dict[str, Any] | None = None
    # OSCAR services the spec's FDL files (oscar.fdl_files) created or updated once it was configured.
    services: tuple[Applied, ...] = ()


def new_deployment_tag() -> str:
    return f"dpl-{secrets.token_hex(8)}"


def open_store(paths: Paths) -> DeploymentStore:
    from deployer.adapters.state.store import DeploymentStore

    return DeploymentStore(paths.state_db)


def follow_recorded(
    store: DeploymentStore,
    client: IMClient,
    record: DeploymentRecord,
    timeout: float,
    hooks: CreateHooks,
) -> InfraState:
    """Follow to configured, recording the last state seen whatever happens."""
    from deployer.lifecycle.deploy import follow

    assert record.infrastructure_id is not None
    last: list[InfraState] = []

    def on_change(old: InfraState | None, new: InfraState) -> None:
        last.append(new)
        hooks.change(old, new)

    try:
        return follow(
            client,
            record.infrastructure_id,
            timeout=timeout,
            on_change=on_change,
            on_unreachable=hooks.unreachable,
            sleep=hooks.sleep,
        )
    finally:
        if last:
            store.update(record.name, status=last[-1].state)


def create_deployment(
    paths: Paths,
    spec_file: Path | None,
    *,
    cloud: str | None = None,
    name: str | None = None,
    overrides: list[str] | None = None,
    workers: int | None = None,
    im_url: str | None = None,
    auth_file: Path | None = None,
    token: str | None = None,
    insecure: bool = False,
    wait: bool = True,
    timeout: float = 1800.0,
    dry_run: bool = False,
    show_secrets: bool = False,
    deployment_tag: str | None = None,
    wait_lock: bool = False,
    hooks: CreateHooks | None = None,
) -> CreateResult:
    """Render, validate and submit a cluster to the IM, record it, and (``wait``) follow it to configured.

    The deployment's lock is held from the submission to the end of the follow (a scale or destroy
    meanwhile would race the IM's own create). A name already recorded with the same spec is resumed,
    never submitted twice (``deployer.lifecycle.deploy.submit``).
    """
    from contextlib import ExitStack

    from deployer.adapters.tosca import validate_tosca
    from deployer.lifecycle.credentials import resolve_endpoint
    from deployer.lifecycle.deploy import mask_outputs, submit
    from deployer.lifecycle.identity import settle_duplicates, settled_message
    from deployer.lifecycle.oscar import apply_after_create, load_spec_fdls
    from deployer.lifecycle.prepare import check_placement, prepare_cluster
    from deployer.lifecycle.session import locked

    hooks = hooks or CreateHooks()
    tag = deployment_tag or new_deployment_tag()
    prepared = prepare_cluster(
        paths,
        spec_file,
        cloud=cloud,
        name=name,
        overrides=list(overrides or []),
        workers=workers,
        deployment_tag=tag,
    )
    spec = prepared.spec
    assert spec.name is not None
    check_placement(prepared)
    for finding in prepared.findings:
        hooks.warn(finding.message)
    validate_tosca(prepared.tosca_redacted, source=str(spec_file or "rendered TOSCA"))
    fdls = load_spec_fdls(spec, spec_file)  # oscar.fdl_files: checked now, applied once configured
    endpoint = resolve_endpoint(
        paths, spec.clouds(), im_url=im_url, auth_file=auth_file, token=token, insecure=insecure
    )
    base = {"name": spec.name, "simulated": prepared.simulated, "elasticity": spec.elasticity.enabled}
    with ExitStack() as stack:
        client = stack.enter_context(endpoint.client())
        if dry_run:
            estimate = client.estimate(prepared.tosca)
            return CreateResult(
                im_url=client.url, tosca_redacted=prepared.tosca_redacted, estimate=estimate, **base
            )
        stack.enter_context(locked(paths, spec.name, "create", wait=wait_lock))
        store = open_store(paths)
        hooks.before_submit()
        record = submit(
            store,
            client,
            name=spec.name,
            cloud=spec.cloud,
            tosca=prepared.tosca,
            tosca_redacted=prepared.tosca_redacted,
            deployment_tag=tag,
            spec_hash=prepared.spec_hash,
            auth_file=str(endpoint.auth_file) if endpoint.auth_file else None,
            clouds=spec.clouds(),
            insecure=insecure,
            simulated=prepared.simulated,
            notify=hooks.warn,
        )
        hooks.submitted(record, client.url)
        if not wait:
            return CreateResult(
                im_url=client.url,
                infrastructure_id=record.infrastructure_id,
                state=record.status,
                **base,
            )
        final = follow_recorded(store, client, record, timeout, hooks)
        # A create request that landed very late (after a resubmission) shows up only now: destroy it.
        settled = settle_duplicates(store, client, record)
        for line in settled_message(spec.name, settled):
            hooks.warn(line)
        record = settled.record
        assert record.infrastructure_id is not None
        values = mask_outputs(client.outputs(record.infrastructure_id), show_secrets=show_secrets)
    services = apply_after_create(
        paths, spec.name, values, fdls, simulated=prepared.simulated, notify=hooks.warn
    )
    return CreateResult(
        im_url=client.url,
        infrastructure_id=record.infrastructure_id,
        state=final.state,
        vm_count=len(final.vm_states),
        outputs=values,
        services=tuple(services),
        **base,
    )


def destroy_deployment(
    paths: Paths,
    record: DeploymentRecord,
    *,
    auth_file: Path | None = None,
    insecure: bool = False,
    token: str | None = None,
    keep_record: bool = False,
    wait_lock: bool = False,
    warn: Callable[[str], None] = _ignore,
) -> DestroyResult:
    """Destroy a recorded deployment, verified in the IM by id and by tag (``deployer.lifecycle.deploy.
    destroy``), under the deployment's lock; a local deployment's sandbox cluster stops first."""
    from deployer.lifecycle.deploy import DestroyResult, destroy
    from deployer.lifecycle.session import locked
    from deployer.sandbox.processes import forget_sandbox, stop_sandbox

    with locked(paths, record.name, "destroy", wait=wait_lock):
        store = open_store(paths)
        current = store.find(record.name)
        if current is None:  # destroyed by the command we waited for
            return DestroyResult(())
        stop_sandbox(paths, record.name)  # its daemon must not scale what is being destroyed
        with client_for_record(
            paths, current, auth_file=auth_file, insecure=insecure, token=token, warn=warn
        ) as client:
            result = destroy(store, client, current, keep_record=keep_record, notify=warn)
        forget_sandbox(paths, record.name)
    return result


def client_for_record(
    paths: Paths,
    record: DeploymentRecord,
    *,
    auth_file: Path | None = None,
    insecure: bool = False,
    token: str | None = None,
    warn: Callable[[str], None] = _ignore,
) -> IMClient:
    """An IM client for an existing deployment (with the credentials and TLS choice of its create)."""
    from deployer.lifecycle.credentials import endpoint_for_record

    endpoint = endpoint_for_record(paths, record, auth_file=auth_file, token=token)
    if endpoint.insecure:
        warn(f"{record.name}: {INSECURE_REMEMBERED}")
    return endpoint.client(insecure=insecure)
