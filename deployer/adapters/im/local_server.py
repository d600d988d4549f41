"""The embedded local IM: the real IM server with its Dummy connector, on 127.0.0.1, in the background.

Called by ``deployer local start|stop|status``, by ``deployer create --cloud local`` (which starts it
when needed) and by the test fixture ``local_im``. Everything lives under one directory
(``Paths.local_im_dir``): the SQLite data (``inf.dat``), the IM's working directory (it writes
``tosca_cache.sqlite`` there), logs, and ``server.json`` (pid, port, url) that later commands read.
The server process runs ``deployer.adapters.im._launch_im``, which configures the IM and keeps it off
the network beyond loopback (see that module).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from deployer.errors import RemoteError, TimeoutExpired
from deployer.paths import ensure_private_dir

LAUNCHER_MODULE = "deployer.adapters.im._launch_im"
HOST = "127.0.0.1"
STATE_FILE = "server.json"


@dataclass(frozen=True)
class LocalIMInfo:
    pid: int
    port: int
    url: str
    started_at: float


def free_port() -> int:
    """A loopback port nobody listens on right now (the IM binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """A loopback HTTP server run as a background process of its own, whose files live in ``root``:
    ``server.json`` (pid, port, url), ``logs/console.log``. Subclasses say what to run (``command``),
    which module identifies the process (``launcher_module``) and which path answers when it is up."""

    launcher_module = LAUNCHER_MODULE
    label = "the local IM"
    health_path = "/version"

    def __init__(self, root: Path) -> None:
        self.root = root

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def console_file(self) -> Path:
        return self.root / "logs" / "console.log"

    @property
    def log_file(self) -> Path:
        """Where to look when it does not come up."""
        return self.console_file

    def status(self) -> LocalIMInfo | None:
        """The running server, or None. A stale ``server.json`` (dead or foreign pid) is removed."""
        info = self._read_state()
        if info is None:
            return None
        if not _is_our_server(info.pid, self.launcher_module):
            self.state_file.unlink(missing_ok=True)
            return None
        return info

    def answering(self, info: LocalIMInfo, timeout: float = 2.0) -> bool:
        with requests.Session() as session:
            session.trust_env = False  # loopback: never through an HTTP(S)_PROXY from the environment
            try:
                return session.get(f"{info.url}{self.health_path}", timeout=timeout).ok
            except requests.RequestException:
                return False

    def start(self, *, port: int | None = None, wait: float = 60.0) -> LocalIMInfo:
        """Start the server unless it runs already; return once it answers HTTP."""
        running = self.status()
        if running is not None:
            self._wait_answering(running, None, wait)
            return running
        ensure_private_dir(self.root)
        ensure_private_dir(self.root / "logs")
        chosen = port or free_port()
        command = self.command(chosen)
        with open(self.console_file, "ab") as console:
            # A session of its own: Ctrl-C in the deployer command that started it must not stop it.
            process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        info = LocalIMInfo(
            pid=process.pid, port=chosen, url=f"http://{HOST}:{chosen}", started_at=time.time()
        )
        self._write_state(info)
        try:
            self._wait_answering(info, process, wait)
        except BaseException:
            self._terminate(process.pid, grace=5.0)
            self.state_file.unlink(missing_ok=True)
            raise
        return info

    def stop(self, *, grace: float = 15.0) -> bool:
        """SIGTERM the server (SIGKILL after ``grace`` s). Returns False when it was not running."""
        info = self.status()
        if info is None:
            return False
        self._terminate(info.pid, grace=grace)
        self.state_file.unlink(missing_ok=True)
        return True

    def _wait_answering(
        self, info: LocalIMInfo, process: subprocess.Popen[bytes] | None, wait: float
    ) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RemoteError(
                    f"{self.label} exited at start (code {process.returncode}): {self._console_tail()}; "
                    f"full log in {self.console_file}"
                )
            if self.answering(info, timeout=1.0):
                return
            time.sleep(0.2)
        raise TimeoutExpired(
            f"{self.label} did not answer on {info.url} within {wait:.0f}s; see {self.log_file}"
        )

    def _console_tail(self, lines: int = 3) -> str:
        try:
            text = self.console_file.read_text(errors="replace")
        except OSError:
            return "no output"
        return " | ".join(line for line in text.strip().splitlines()[-lines:]) or "no output"

    def _terminate(self, pid: int, *, grace: float) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)  # its own session: the group holds any children it spawned
        except ProcessLookupError:
            return
        # Let init (or us) reap it before the caller reuses the port.
        end = time.monotonic() + 5.0
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)

    def _read_state(self) -> LocalIMInfo | None:
        try:
            data = json.loads(self.state_file.read_text())
            return LocalIMInfo(
                pid=int(data["pid"]),
                port=int(data["port"]),
                url=str(data["url"]),
                started_at=data["started_at"],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, info: LocalIMInfo) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, self.state_file)


class LocalIM(BackgroundServer):
    """Start, stop and inspect the local IM whose files live in ``root``."""

    def __init__(self, root: Path, *, public_ip_timeout: int = 90, log_level: str = "INFO") -> None:
        super().__init__(root)
        self.public_ip_timeout = public_ip_timeout
        self.log_level = log_level

    @property
    def log_file(self) -> Path:
        return self.root / "logs" / "im.log"

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            LAUNCHER_MODULE,
            "--dir",
            str(self.root),
            "--port",
            str(port),
            "--public-ip-timeout",
            str(self.public_ip_timeout),
            "--log-level",
            self.log_level,
        ]


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie not ours to reap counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, launcher_module: str = LAUNCHER_MODULE) -> bool:
    """True when ``pid`` is alive and runs ``launcher_module`` (guards against a recycled pid)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the pid
    return launcher_module.encode() in cmdline
