"""Teaching classes: N independent clusters from one spec, one per student team.

Called by ``deployer class ...`` (``deployer.cli.class_cmds``). Every team's cluster goes through the one
create path (``deployer.lifecycle.create.create_deployment``); this module adds what a class needs:

- membership is recorded (``ClassStore``) before any create request leaves, with the deployment tag the
  IM will carry, so an interrupted run leaves nothing unrecorded and a re-run resumes: a team that is
  ready is kept, a create that reached the IM is found again by its tag, only what is missing is created;
- teams run ``parallel`` at a time; a failed create is retried (``retries`` times, with a short pause),
  then reported, and never stops the other teams;
- cancelling (``cancel`` set, e.g. on Ctrl-C) stops new submissions and the follow loops; a create request
  already sent completes and is recorded;
- destroying touches only the recorded members: each member's deployment, then anything else in the IM
  carrying the member's tag (a create whose answer was lost), and verifies that nothing is left.

One class is changed by one process at a time (a lock file), so a "submitting" record found by a re-run
belongs to a dead run, never to a create still in flight.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.adapters.state.classes import CREATING, FAILED, READY, ClassRecord, ClassStore, Member
from deployer.adapters.state.store import DeploymentRecord
from deployer.errors import DeployerError, UserError
from deployer.lifecycle.create import (
    CreateHooks,
    client_for_record,
    create_deployment,
    destroy_deployment,
    follow_recorded,
    new_deployment_tag,
    open_store,
)
from deployer.lifecycle.identity import scan_tags
from deployer.paths import Paths, ensure_private_dir

PREFIX_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
RETRY_PAUSE_S = 2.0
# How long the IM may keep listing an infrastructure it has destroyed (its save is retried), and how often
# destroy looks.
SETTLE_S = 30.0
VERIFY_POLL_S = 1.0

# (team, deployment name, what happened): one call per change, from the team's worker thread.
OnEvent = Callable[[int, str, str], None]


class Cancelled(Exception):
    """The class run was cancelled (Ctrl-C); what was submitted is recorded."""


@dataclass(frozen=True)
class _Stop:
    """One team's view of the class's cancel event: checks, and waits that end early on cancel."""

    cancel: threading.Event
    name: str

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(self.name)

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled(self.name)


@dataclass(frozen=True)
class ClassOptions:
    prefix: str
    teams: int
    spec_file: Path | None
    cloud: str | None = None
    overrides: tuple[str, ...] = ()
    im_url: str | None = None
    auth_file: Path | None = None
    token: str | None = None
    insecure: bool = False
    parallel: int = 4
    retries: int = 2
    timeout: float = 1800.0


@dataclass(frozen=True)
class TeamResult:
    team: int
    name: str
    status: str  # READY or FAILED
    attempts: int
    error: str | None = None
    infrastructure_id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # unmasked: the roster is written 0600
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TeamStatus:
    team: int
    name: str
    membership: str
    deployment: str | None  # the deployment record's status, None when there is none
    state: str | None  # what the IM says now
    infrastructure_id: str | None
    endpoints: dict[str, Any]
    problem: str | None = None


@dataclass(frozen=True)
class DestroyReport:
    destroyed: tuple[str, ...]
    already_gone: tuple[str, ...]
    leftovers: tuple[str, ...]  # one line each: what is still there and why


def team_name(prefix: str, team: int) -> str:
    return f"{prefix}-{team:02d}"


def check_prefix(prefix: str) -> None:
    if not PREFIX_PATTERN.match(prefix):
        raise UserError(
            f"--prefix {prefix!r}: use 1-32 lowercase letters, digits and '-', starting with a letter "
            "(team clusters are named PREFIX-01, PREFIX-02, ...)"
        )


@contextmanager
def class_lock(paths: Paths, prefix: str) -> Iterator[None]:
    """Hold the class's lock file; another process changing the same class is refused, not waited for."""
    directory = ensure_private_dir(paths.state_dir / "classes")
    fd = os.open(directory / f"{prefix}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"class {prefix!r} is being changed by another deployer process; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


# ---- create -------------------------------------------------------------------------------------


def create_class(
    paths: Paths,
    options: ClassOptions,
    *,
    on_event: OnEvent,
    cancel: threading.Event,
) -> list[TeamResult]:
    """Create (or resume) every team's cluster. Returns one result per team, in team order.

    Raises ``Cancelled`` when ``cancel`` is set, after the running creates have stopped.
    """
    from deployer.core.spec import load_spec
    from deployer.lifecycle.lockfile import is_lock_file, load_locked

    check_prefix(options.prefix)
    if options.teams < 1:
        raise UserError("--teams must be 1 or more")
    # Check once, before anything is recorded: a bad spec (or a drifted lock) fails the class, not N teams.
    first = team_name(options.prefix, 1)
    if is_lock_file(options.spec_file):
        assert options.spec_file is not None
        spec, _ = load_locked(paths, options.spec_file, name=first)
    else:
        spec = load_spec(options.spec_file, list(options.overrides), cloud=options.cloud, name=first)
    classes = ClassStore(paths.state_db)
    with class_lock(paths, options.prefix):
        _check_endpoint(paths, options, spec.clouds())
        record = classes.save_class(
            ClassRecord(
                prefix=options.prefix,
                teams=options.teams,
                spec_file=str(options.spec_file.resolve()) if options.spec_file else None,
                cloud=",".join(spec.clouds()),
                im_url=options.im_url,
                auth_file=str(options.auth_file.resolve()) if options.auth_file else None,
                insecure=options.insecure,
            )
        )
        members = [
            classes.plan_member(options.prefix, team, team_name(options.prefix, team), new_deployment_tag())
            for team in range(1, record.teams + 1)
        ]
        results: dict[int, TeamResult] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, options.parallel), thread_name_prefix="class")
        try:
            futures = {
                pool.submit(_run_team, paths, classes, options, member, on_event, cancel): member
                for member in members
            }
            for future in as_completed(futures):
                result = future.result()
                if result is not None:
                    results[result.team] = result
        except BaseException:
            cancel.set()  # Ctrl-C (or a bug): no new submissions, follows stop at their next poll
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if cancel.is_set():
            raise Cancelled(f"class {options.prefix}: cancelled")
    return [results[t] for t in sorted(results)]


def _check_endpoint(paths: Paths, options: ClassOptions, clouds: tuple[str, ...]) -> None:
    """Credentials and IM found once, up front: a missing profile fails the class, not each team, and
    the embedded local IM is started here, not by several teams at once."""
    from deployer.lifecycle.credentials import resolve_endpoint

    resolve_endpoint(
        paths,
        clouds,
        im_url=options.im_url,
        auth_file=options.auth_file,
        token=options.token,
        insecure=options.insecure,
    )


def _run_team(
    paths: Paths,
    classes: ClassStore,
    options: ClassOptions,
    member: Member,
    on_event: OnEvent,
    cancel: threading.Event,
) -> TeamResult | None:
    def event(message: str) -> None:
        on_event(member.team, member.name, message)

    stop = _Stop(cancel, member.name)
    attempts = member.attempts
    error = "no attempt was made"
    try:
        while attempts <= member.attempts + options.retries:
            stop.check()
            try:
                result = _resume_or_create(paths, classes, options, member, attempts, event, stop)
            except UserError as err:  # not something a retry fixes
                error = str(err)
                break
            except DeployerError as err:
                error = str(err).splitlines()[0]
                attempts += 1
                classes.update_member(member.prefix, member.team, attempts=attempts, error=error)
                if attempts <= member.attempts + options.retries:
                    event(f"attempt {attempts} failed ({error}); retrying in {RETRY_PAUSE_S:.0f}s")
                    _discard_failed(paths, member, event)
                    stop.sleep(RETRY_PAUSE_S)
                continue
            classes.update_member(member.prefix, member.team, status=READY, error=None)
            event("ready")
            return result
    except Cancelled:
        event("cancelled; run `deployer class create` again to resume")
        return None
    classes.update_member(member.prefix, member.team, status=FAILED, error=error)
    event(f"failed: {error}")
    return TeamResult(member.team, member.name, FAILED, attempts, error)


def _resume_or_create(
    paths: Paths,
    classes: ClassStore,
    options: ClassOptions,
    member: Member,
    attempts: int,
    event: Callable[[str], None],
    stop: _Stop,
) -> TeamResult:
    deployments = open_store(paths)
    record = deployments.find(member.name)
    if record is not None and record.deployment_tag != member.deployment_tag:
        raise UserError(
            f"a deployment named {member.name!r} exists outside class {member.prefix!r}; it is left alone "
            "(destroy it or pick another --prefix)"
        )
    hooks = CreateHooks(
        warn=lambda message: event(f"warning: {message}"),
        before_submit=stop.check,
        submitted=lambda rec, url: event(f"submitted: infrastructure {rec.infrastructure_id}"),
        change=lambda old, new: event(_describe(new.state, new.vm_states)),
        unreachable=lambda err: event(f"IM unreachable ({err}); retrying"),
        sleep=stop.sleep,
    )
    if record is not None:
        record = _recover(paths, options, record, event)
    if record is not None:
        event(f"resuming: infrastructure {record.infrastructure_id}")
        with client_for_record(
            paths, record, auth_file=options.auth_file, insecure=options.insecure, token=options.token
        ) as client:
            follow_recorded(deployments, client, record, options.timeout, hooks)
            assert record.infrastructure_id is not None
            outputs = client.outputs(record.infrastructure_id)
        return _ready(paths, member, attempts + 1, record.infrastructure_id, outputs)
    classes.update_member(member.prefix, member.team, status=CREATING)
    event(f"creating (attempt {attempts + 1})")
    created = create_deployment(
        paths,
        options.spec_file,
        cloud=options.cloud,
        name=member.name,
        overrides=list(options.overrides),
        im_url=options.im_url,
        auth_file=options.auth_file,
        token=options.token,
        insecure=options.insecure,
        timeout=options.timeout,
        show_secrets=True,
        deployment_tag=member.deployment_tag,
        hooks=hooks,
    )
    if created.elasticity:
        from deployer.lifecycle.daemon_install import install_after_create

        # As `deployer create` does: never raises, says how to run the daemon when it cannot install it.
        install_after_create(
            paths, member.name, notify=lambda note: event(f"note: {note}"), token=options.token
        )
    return _ready(paths, member, attempts + 1, created.infrastructure_id, created.outputs)


def _recover(
    paths: Paths, options: ClassOptions, record: DeploymentRecord, event: Callable[[str], None]
) -> DeploymentRecord | None:
    """A record left by an earlier run, its interrupted create adopted by tag once it can no longer land;
    None when that create never reached the IM (the record is dropped, and the team is created again)."""
    from deployer.lifecycle.deploy import resume_submission

    with client_for_record(
        paths, record, auth_file=options.auth_file, insecure=options.insecure, token=options.token
    ) as client:
        return resume_submission(open_store(paths), client, record, notify=event)


def _discard_failed(paths: Paths, member: Member, event: Callable[[str], None]) -> None:
    """Destroy what a failed attempt left in the IM (a cluster that failed to configure), if anything."""
    record = open_store(paths).find(member.name)
    if record is None or record.deployment_tag != member.deployment_tag:
        return
    try:
        destroy_deployment(paths, record)
    except DeployerError as err:
        event(f"could not remove the failed attempt yet ({err}); the next attempt resumes it")


def _ready(
    paths: Paths, member: Member, attempts: int, inf_id: str | None, outputs: dict[str, Any]
) -> TeamResult:
    from deployer.adapters.state.secrets import SecretStore

    return TeamResult(
        team=member.team,
        name=member.name,
        status=READY,
        attempts=attempts,
        infrastructure_id=inf_id,
        outputs=dict(outputs),
        credentials=SecretStore(paths).load(member.name),
    )


def _describe(state: str, vm_states: dict[str, str]) -> str:
    done = sum(1 for s in vm_states.values() if s == "configured")
    return f"{state} ({done}/{len(vm_states)} VMs configured)"


# ---- status -------------------------------------------------------------------------------------


def class_status(paths: Paths, prefix: str, *, token: str | None = None) -> list[TeamStatus]:
    """Every team: its membership state, its deployment record, and what the IM says now."""
    from deployer.lifecycle.deploy import mask_outputs

    classes = ClassStore(paths.state_db)
    classes.get(prefix)
    deployments = open_store(paths)
    rows = []
    for member in classes.members(prefix):
        record = deployments.find(member.name)
        if record is None or record.deployment_tag != member.deployment_tag:
            problem = member.error
            if record is not None:
                problem = "the name is used by a deployment outside the class"
            elif member.status == READY:
                problem = "its deployment is gone (destroyed outside the class?); `class create` recreates it"
            rows.append(TeamStatus(member.team, member.name, member.status, None, None, None, {}, problem))
            continue
        state = None
        endpoints: dict[str, Any] = {}
        problem = member.error
        if record.infrastructure_id:
            try:
                with client_for_record(paths, record, token=token) as client:
                    state = client.state(record.infrastructure_id).state
                    endpoints = mask_outputs(client.outputs(record.infrastructure_id), show_secrets=False)
            except DeployerError as err:
                problem = str(err).splitlines()[0]
        rows.append(
            TeamStatus(
                member.team,
                member.name,
                member.status,
                record.status,
                state,
                record.infrastructure_id,
                endpoints,
                problem,
            )
        )
    return rows


# ---- destroy ------------------------------------------------------------------------------------


def destroy_class(
    paths: Paths,
    prefix: str,
    *,
    on_event: OnEvent,
    token: str | None = None,
    parallel: int = 4,
    settle: float = SETTLE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> DestroyReport | None:
    """Destroy every member of the class and verify, in the IM's own listing, that it is gone.

    Returns None when there is no such class. A member is forgotten only once the IM no longer lists
    anything destroyed for it, so a re-run still knows what is left.
    """
    classes = ClassStore(paths.state_db)
    with class_lock(paths, prefix):
        record = classes.find(prefix)
        if record is None:
            return None
        members = classes.members(prefix)
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="class") as pool:
            futures = [pool.submit(_destroy_member, paths, record, m, on_event, token) for m in members]
            outcomes = [future.result() for future in futures]
        destroyed_ids = {
            inf_id: m for m, o in zip(members, outcomes, strict=True) for inf_id in o.destroyed_ids
        }
        still_listed = _verify_gone(paths, record, destroyed_ids, on_event, token, settle, sleep)
        final: list[tuple[Member, _MemberOutcome]] = []
        for member, outcome in zip(members, outcomes, strict=True):
            listed = sorted(i for i, m in still_listed.items() if m == member)
            if listed:
                outcome = _MemberOutcome("leftover", f"{member.name}: the IM still lists {', '.join(listed)}")
            if outcome.kind != "leftover":
                classes.forget_member(member.prefix, member.team)
            final.append((member, outcome))
        classes.forget_class(prefix)
    return DestroyReport(
        destroyed=tuple(m.name for m, o in final if o.kind == "destroyed"),
        already_gone=tuple(m.name for m, o in final if o.kind == "gone"),
        leftovers=tuple(o.text for _, o in final if o.kind == "leftover"),
    )


@dataclass(frozen=True)
class _MemberOutcome:
    kind: str  # "destroyed", "gone" or "leftover"
    text: str = ""
    destroyed_ids: tuple[str, ...] = ()


def _verify_gone(
    paths: Paths,
    cls: ClassRecord,
    destroyed: dict[str, Member],
    on_event: OnEvent,
    token: str | None,
    settle: float,
    sleep: Callable[[float], None],
) -> dict[str, Member]:
    """The destroyed infrastructures the IM still lists after ``settle`` seconds and one more destroy.

    Why: the IM persists a destroy with a save that a concurrent save of another infrastructure can
    overwrite (seen with parallel destroys on IM 2.0 + SQLite): the infrastructure is then listed again,
    and would come back at the IM's next restart. Destroying it once more stores it as deleted.
    """
    if not destroyed:
        return {}
    deadline = time.monotonic() + settle
    destroyed_again: set[str] = set()
    try:
        with _class_client(paths, cls, token) as client:
            while True:
                ids = set(client.list_ids())
                listed = {i: m for i, m in destroyed.items() if i in ids}
                if not listed or time.monotonic() >= deadline:
                    return listed
                for inf_id, member in listed.items():
                    # Half the settle time first: the IM's own retried save usually clears it.
                    if inf_id not in destroyed_again and time.monotonic() >= deadline - settle / 2:
                        on_event(
                            member.team, member.name, f"the IM still lists {inf_id}: destroying it again"
                        )
                        client.destroy(inf_id)
                        destroyed_again.add(inf_id)
                sleep(VERIFY_POLL_S)
    except DeployerError as err:
        for member in {m.team: m for m in destroyed.values()}.values():
            on_event(member.team, member.name, f"cannot check the IM's listing: {err}")
        return dict(destroyed)


def _destroy_member(
    paths: Paths, cls: ClassRecord, member: Member, on_event: OnEvent, token: str | None
) -> _MemberOutcome:
    def event(message: str) -> None:
        on_event(member.team, member.name, message)

    deployments = open_store(paths)
    record = deployments.find(member.name)
    gone: set[str] = set()
    try:
        if record is not None and record.deployment_tag == member.deployment_tag:
            event(f"destroying infrastructure {record.infrastructure_id or '(create never answered)'}")
            # Verified: the recorded id and anything else carrying the member's tag, until the IM lists none.
            gone.update(destroy_deployment(paths, record, token=token).destroyed)
        else:
            if record is not None:
                event("a deployment outside the class has this name: left alone")
            # No record of ours (forgotten before its leftovers were): whatever carries the member's tag.
            with _class_client(paths, cls, token) as client:
                for inf_id in scan_tags(deployments, client).carrying(member.deployment_tag):
                    if client.destroy(inf_id):
                        event(f"destroyed infrastructure {inf_id} (found by its tag)")
                        gone.add(inf_id)
    except DeployerError as err:
        event(f"not destroyed: {err}")
        return _MemberOutcome("leftover", f"{member.name}: {str(err).splitlines()[0]}", tuple(gone))
    event("destroyed" if gone else "already gone")
    return _MemberOutcome("destroyed" if gone else "gone", destroyed_ids=tuple(gone))


def _class_client(paths: Paths, cls: ClassRecord, token: str | None) -> Any:
    from deployer.lifecycle.credentials import resolve_endpoint

    clouds = [c for c in (cls.cloud or "local").split(",") if c]
    endpoint = resolve_endpoint(
        paths,
        clouds,
        im_url=cls.im_url,
        auth_file=Path(cls.auth_file) if cls.auth_file else None,
        start_local=False,
        token=token,
        insecure=cls.insecure,
    )
    return endpoint.client()


# ---- roster -------------------------------------------------------------------------------------

ROSTER_COLUMNS = (
    "team",
    "cluster",
    "status",
    "kubernetes_api_endpoint",
    "oscar_endpoint",
    "minio_endpoint",
    "front_private_ip",
    "front_public_ip",
    "kubernetes_user",
    "kubernetes.admin_token",
    "oscar_user",
    "oscar.oscar_password",
    "minio_user",
    "oscar.minio_password",
    "error",
)
# The users the published types create next to the generated passwords.
_FIXED_USERS = {"kubernetes_user": "kubeuser", "oscar_user": "oscar", "minio_user": "minio"}


def roster_rows(results: list[TeamResult]) -> list[dict[str, str]]:
    rows = []
    for result in results:
        values: dict[str, Any] = {**result.outputs, **result.credentials}
        if result.status == READY:
            values.update(_FIXED_USERS)
        values.update(team=result.team, cluster=result.name, status=result.status, error=result.error)
        rows.append({column: _cell(values.get(column)) for column in ROSTER_COLUMNS})
    return rows


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _spreadsheet_text(text: str) -> str:
    """A value from the IM that starts like a formula stays text when the CSV is opened in a spreadsheet."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def roster_csv(results: list[TeamResult]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROSTER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _spreadsheet_text(v) for k, v in row.items()} for row in roster_rows(results))
    return buffer.getvalue()


def roster_markdown(prefix: str, results: list[TeamResult]) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [f"# Class {prefix}", "", "| " + " | ".join(ROSTER_COLUMNS) + " |"]
    lines.append("|" + "---|" * len(ROSTER_COLUMNS))
    for row in roster_rows(results):
        lines.append("| " + " | ".join(escape(row[c]) for c in ROSTER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_roster(directory: Path, prefix: str, results: list[TeamResult]) -> tuple[Path, Path]:
    """The roster as CSV and Markdown, each written atomically with mode 0600 (it holds credentials)."""
    from deployer.adapters.state.secrets import write_private

    csv_path = directory / f"{prefix}-roster.csv"
    md_path = directory / f"{prefix}-roster.md"
    write_private(csv_path, roster_csv(results))
    write_private(md_path, roster_markdown(prefix, results))
    return csv_path, md_path
