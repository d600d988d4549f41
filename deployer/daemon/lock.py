"""An exclusive, non-blocking file lock so two ``daemon run`` invocations (cron overlap) never act at once.

``fcntl.flock`` is released by the kernel when the process dies, so a crashed run never leaves a stale lock.
Called by the daemon CLI around ``--once`` and the long-running loop.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deployer.errors import UserError
from deployer.paths import ensure_private_dir


class LockHeld(UserError):
    """Another daemon run for the same cluster holds the lock."""


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeld(f"another daemon run holds {path} (pid {holder}); skipping this run") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
