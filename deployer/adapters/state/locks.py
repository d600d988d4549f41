"""One writer per deployment on this machine: a lock file per deployment name.

Called by every command that changes a deployment (create, scale, reconfigure, destroy, edge, a local
daemon's IM calls). ``fcntl.flock`` is released by the kernel when its holder dies, even by SIGKILL, so
the lock of a killed process is recovered by the next command without any clean-up. The file holds who
holds it (pid, command, since) for the "busy" message; it is never deleted, because deleting a lock file
that another process is about to lock would let two processes hold "the" lock at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from deployer.errors import Busy
from deployer.paths import ensure_private_dir

_POLL_S = 0.2


def lock_path(locks_dir: Path, name: str) -> Path:
    return locks_dir / f"{name}.lock"


@contextmanager
def deployment_lock(
    locks_dir: Path,
    name: str,
    *,
    command: str,
    wait: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[None]:
    """Hold the lock of deployment ``name`` for the block; ``Busy`` when another process holds it for
    longer than ``wait`` seconds (0: fail at once)."""
    ensure_private_dir(locks_dir)
    path = lock_path(locks_dir, name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = clock() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock() >= deadline:
                    raise Busy(_busy_message(name, fd, waited=wait)) from None
                sleep(_POLL_S)
        holder = {"pid": os.getpid(), "command": command, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def holder_of(locks_dir: Path, name: str) -> str | None:
    """Who holds the lock of ``name`` right now, in words; None when nobody does."""
    path = lock_path(locks_dir, name)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _describe(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        holder = {}
    since = holder.get("since")
    when = time.strftime("%H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return f"`deployer {holder.get('command', '?')}` (pid {holder.get('pid', '?')}, since {when})"


def _busy_message(name: str, fd: int, *, waited: float) -> str:
    after = f" after waiting {waited:.0f}s" if waited else ""
    return (
        f"deployment {name!r} is busy{after}: {_describe(fd)} is changing it; wait for it to finish, "
        "or pass --wait-lock to wait"
    )
