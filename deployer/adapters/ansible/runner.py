"""Run one of our playbooks with ``ansible-playbook`` as a subprocess and stream its progress.

Called by ``deployer.lifecycle.edge`` (edge joins and removals) and by post-deploy steps. Never imports
Ansible: the playbook prints JSON lines through our stdout callback (``ansible/callback_plugins``), which
this module parses into ``ProgressEvent`` values for the caller and into a per-host summary.

Per run: a private temp dir holds the inventory and the extra vars (0600 files, so secrets never
reach a command line or ``ps``); the full output goes to ``<logs_dir>/ansible-<playbook>-<time>.log``
(0600, redacted). SSH ControlPersist masters of the run are closed at the end, so no ssh process
outlives deployer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.assets import asset_dir
from deployer.errors import TimeoutExpired, UserError
from deployer.logs import redact, register_secret
from deployer.paths import ensure_private_dir

ANSIBLE_DIR_ENV = "DEPLOYER_ANSIBLE_DIR"
DEFAULT_TIMEOUT_S = 3600.0


def ansible_dir() -> Path:
    """Where our playbooks, roles and callback live (``DEPLOYER_ANSIBLE_DIR`` overrides)."""
    override = os.environ.get(ANSIBLE_DIR_ENV)
    found = Path(override) if override else asset_dir("ansible")
    if not (found / "ansible.cfg").is_file():
        raise UserError(f"deployer's Ansible playbooks are not at {found}; set {ANSIBLE_DIR_ENV}")
    return found


def playbook_artifact_url(name: str, base: str | None = None) -> str:
    """Where the IM can fetch playbook ``name`` for a TOSCA interface ``implementation``.

    With ``base`` (an http(s) URL where ``ansible/`` is published, e.g. a release mirror) the URL is
    ``<base>/<name>``; otherwise a ``file://`` URL to the local copy, which an IM on this machine reads.
    The IM inlines the playbook's plays (dropping ``hosts``/``connection``) into the VM's own
    contextualization, so the roles it names must be installed where the IM runs Ansible.
    """
    if not name.endswith((".yml", ".yaml")):
        name += ".yml"
    if base:
        return f"{base.rstrip('/')}/{name}"
    path = ansible_dir() / name
    if not path.is_file():
        raise UserError(f"no playbook named {name} in {ansible_dir()}")
    return path.as_uri()


def ansible_playbook_command() -> str:
    """``ansible-playbook`` from deployer's own environment first, then PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if found is None:
        raise UserError("ansible-playbook not found; install ansible-core into deployer's environment")
    return found


@dataclass(frozen=True)
class ProgressEvent:
    """One line of progress: a play or task starting, or a task's result on one host."""

    kind: str  # play | task | result
    play: str = ""
    task: str = ""
    host: str = ""
    status: str = ""  # ok | changed | failed | unreachable | skipped | ignored
    message: str = ""


@dataclass(frozen=True)
class HostSummary:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass(frozen=True)
class TaskFailure:
    host: str
    task: str
    message: str
    unreachable: bool = False

    def describe(self) -> str:
        what = "unreachable" if self.unreachable else "failed"
        return f"{self.host}: {what} at task '{self.task}': {self.message}"


@dataclass
class PlaybookResult:
    playbook: str
    returncode: int
    log_path: Path
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    failures: list[TaskFailure] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_tail: list[str] = field(default_factory=list)

    @property
    def failed_hosts(self) -> list[str]:
        return sorted({f.host for f in self.failures} | {h for h, s in self.hosts.items() if not s.succeeded})

    def host_ok(self, host: str) -> bool:
        summary = self.hosts.get(host)
        return summary is not None and summary.succeeded and host not in self.failed_hosts

    def first_failure(self, host: str) -> TaskFailure | None:
        return next((f for f in self.failures if f.host == host), None)


class _Collector:
    """Turns callback JSON lines into events, failures, facts and the final stats."""

    def __init__(self, on_event: Callable[[ProgressEvent], None] | None) -> None:
        self.on_event = on_event
        self.failures: list[TaskFailure] = []
        self.facts: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, dict[str, int]] = {}
        self.plain_tail: list[str] = []  # Ansible's own messages (warnings, errors before any play)

    def feed(self, line: str) -> bool:
        """Handle one stdout line; False when it is not one of our events (a plain log line)."""
        try:
            data = json.loads(line)
        except ValueError:
            data = None
        if not isinstance(data, dict) or "event" not in data:
            if line.strip():
                self.plain_tail = [*self.plain_tail[-4:], redact(line.strip())]
            return False
        kind = data["event"]
        if kind == "stats":
            self.stats = data.get("hosts", {})
            return True
        if kind == "result":
            status, host, task = data.get("status", ""), data.get("host", ""), data.get("task", "")
            message = redact(str(data.get("msg", "")))
            if status in ("failed", "unreachable"):
                self.failures.append(TaskFailure(host, task, message, unreachable=status == "unreachable"))
            if data.get("facts"):
                self.facts.setdefault(host, {}).update(data["facts"])
            self._send(ProgressEvent("result", task=task, host=host, status=status, message=message))
        elif kind in ("play", "task"):
            self._send(ProgressEvent(kind, play=data.get("play", ""), task=data.get("task", "")))
        return True

    def _send(self, event: ProgressEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def summaries(self) -> dict[str, HostSummary]:
        return {
            host: HostSummary(
                host=host,
                ok=int(s.get("ok", 0)),
                changed=int(s.get("changed", 0)),
                failed=int(s.get("failures", 0)),
                unreachable=int(s.get("unreachable", 0)),
                skipped=int(s.get("skipped", 0)),
            )
            for host, s in self.stats.items()
        }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@contextmanager
def _run_dir() -> Iterator[Path]:
    # Short path under /tmp: SSH control sockets must fit in a unix socket name (108 bytes).
    path = Path(tempfile.mkdtemp(prefix="dp-ans-"))
    try:
        yield path
    finally:
        _close_ssh_masters(path / "cp")
        shutil.rmtree(path, ignore_errors=True)


def _close_ssh_masters(control_dir: Path) -> None:
    if not control_dir.is_dir():
        return
    for socket in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "deployer-run"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def run_playbook(
    playbook: str,
    inventory: dict[str, Any],
    extra_vars: dict[str, Any],
    *,
    logs_dir: Path,
    on_event: Callable[[ProgressEvent], None] | None = None,
    host_key_checking: bool = True,
    check: bool = False,
    secrets: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> PlaybookResult:
    """Run ``ansible/<playbook>`` against ``inventory`` and return the per-host outcome.

    Failed or unreachable hosts do not raise: they are in the result (``failures``, ``hosts``) so the
    caller decides per host. Raises ``UserError`` when Ansible cannot start at all and
    ``TimeoutExpired`` when the run outlives ``timeout`` (the process group is killed).
    """
    for secret in secrets or []:
        register_secret(secret)
    base = ansible_dir()
    book = base / playbook
    if not book.is_file():
        raise UserError(f"no playbook {playbook} in {base}")
    if _uses_passwords(inventory) and shutil.which("sshpass") is None:
        raise UserError("SSH with a password needs sshpass (apt-get install sshpass), or use a key")
    ensure_private_dir(logs_dir)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    log_path = logs_dir / f"ansible-{book.stem}-{stamp}-{os.getpid()}.log"
    collector = _Collector(on_event)
    with _run_dir() as run_dir:
        inventory_file = run_dir / "inventory.yml"
        vars_file = run_dir / "extra-vars.json"
        _write_private(inventory_file, yaml.safe_dump(inventory, sort_keys=True))
        _write_private(vars_file, json.dumps(extra_vars))
        argv = [ansible_playbook_command(), "-i", str(inventory_file), "-e", f"@{vars_file}", str(book)]
        if check:
            argv.append("--check")
        env = _environment(base, run_dir, host_key_checking)
        returncode = _stream(argv, env, base, log_path, collector, timeout)
    return PlaybookResult(
        playbook=playbook,
        returncode=returncode,
        log_path=log_path,
        hosts=collector.summaries(),
        failures=collector.failures,
        facts=collector.facts,
        output_tail=collector.plain_tail,
    )


def _uses_passwords(inventory: dict[str, Any]) -> bool:
    groups = inventory.get("all", {}).get("children", {}).values()
    return any("ansible_password" in host for group in groups for host in (group.get("hosts") or {}).values())


def _environment(base: Path, run_dir: Path, host_key_checking: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(base / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="deployer_jsonl",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCAL_TEMP=str(run_dir / "tmp"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(run_dir / "cp"),
        PYTHONUNBUFFERED="1",
    )
    # ansible-playbook and its helpers come from deployer's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not host_key_checking:
        env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
        env["ANSIBLE_SSH_EXTRA_ARGS"] = "-o UserKnownHostsFile=/dev/null"
    return env


def _stream(
    argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, collector: _Collector, timeout: float
) -> int:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "w") as log:
        log.write(redact("$ " + " ".join(argv)) + "\n")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,  # so a timeout can stop ssh children too
            )
        except OSError as err:
            raise UserError(f"cannot run ansible-playbook: {err}") from err
        expired = threading.Event()

        def _kill_on_deadline() -> None:
            expired.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill_on_deadline)
        timer.daemon = True
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                log.write(redact(line) + "\n")
                collector.feed(line)
            returncode = proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            timer.cancel()
    if expired.is_set():
        raise TimeoutExpired(f"ansible-playbook ran past {timeout:.0f}s and was stopped; log: {log_path}")
    return returncode
