"""The sandbox clusters' background processes: one ``deployer.sandbox.server`` per local deployment and,
for ``deployer demo``, its daemon, started and stopped like the embedded IM (``BackgroundServer``: a session
of its own, ``server.json`` with pid/port/url, loopback only), with their files under
``DEPLOYER_HOME/sandbox/NAME``.

Called by ``deployer kubeconfig``, ``daemon run``, ``destroy``, ``local stop``, ``demo`` and after
``create``. Light on imports (no Kubernetes client), since ``destroy`` and ``local stop`` load it.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.adapters.im.local_server import BackgroundServer, LocalIMInfo
from deployer.adapters.state.secrets import write_private
from deployer.clock import ScaledClock
from deployer.paths import Paths

SERVER_MODULE = "deployer.sandbox.server"
OBJECTS_FILE = "objects.json"
KUBECONFIG_FILE = "kubeconfig.yaml"


def sandbox_dir(paths: Paths, cluster: str) -> Path:
    return paths.state_dir / "sandbox" / cluster


def read_objects(root: Path) -> dict[str, Any] | None:
    """The persisted sandbox state (clock, port, objects, VM lives), or None."""
    try:
        data = json.loads((root / OBJECTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class SandboxServer(BackgroundServer):
    """The sandbox process of deployment ``cluster``."""

    launcher_module = SERVER_MODULE
    label = "the sandbox Kubernetes API"

    def __init__(self, paths: Paths, cluster: str, *, speed: float = 1.0) -> None:
        super().__init__(sandbox_dir(paths, cluster))
        self.paths, self.cluster, self.speed = paths, cluster, speed

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--config-dir",
            str(self.paths.config_dir),
            "--state-dir",
            str(self.paths.state_dir),
            "--cluster",
            self.cluster,
            "--port",
            str(port),
            "--speed",
            str(self.speed),
        ]

    def start(self, *, port: int | None = None, wait: float = 60.0) -> LocalIMInfo:
        """Start (or find) the sandbox, on the port it had before when that is free (kubeconfigs stay
        valid), and write its kubeconfig."""
        saved = read_objects(self.root)
        info = super().start(port=port or _reusable_port(saved), wait=wait)
        self.write_kubeconfig(info.url)
        return info

    @property
    def kubeconfig_file(self) -> Path:
        return self.root / KUBECONFIG_FILE

    def write_kubeconfig(self, url: str, dest: Path | None = None) -> Path:
        """A kubeconfig (0600, written atomically) for this sandbox; the server admits every loopback
        client, so it carries no credentials."""
        target = dest or self.kubeconfig_file
        write_private(target, yaml.safe_dump(kubeconfig(self.cluster, url), sort_keys=False))
        return target

    def clock(self) -> ScaledClock | None:
        saved = read_objects(self.root)
        return ScaledClock.from_json(saved["clock"]) if saved else None

    def remove(self) -> None:
        """Stop it and delete its objects (the deployment is destroyed)."""
        SandboxDaemon(self.paths, self.cluster).stop()
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _reusable_port(saved: dict[str, Any] | None) -> int | None:
    port = (saved or {}).get("port")
    if not isinstance(port, int):
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


class SandboxDaemon(BackgroundServer):
    """``deployer daemon run --cluster NAME`` in the background against the sandbox (``deployer demo``).
    Its JSON log lines (decisions with reasons) go to ``console.log``; ``/metrics`` says it is up."""

    launcher_module = "deployer"
    label = "the elasticity daemon"
    health_path = "/metrics"

    def __init__(self, paths: Paths, cluster: str) -> None:
        super().__init__(sandbox_dir(paths, cluster) / "daemon")
        self.paths, self.cluster = paths, cluster

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "deployer",
            "--json-logs",
            "-v",
            "daemon",
            "run",
            "--cluster",
            self.cluster,
            "--metrics-port",
            str(port),
        ]

    def decisions(self) -> list[dict[str, Any]]:
        """The decisions logged so far (scale_up, scale_down, mark_failed), oldest first."""
        try:
            lines = self.console_file.read_text(errors="replace").splitlines()
        except OSError:
            return []
        found = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "decision" in record:
                found.append(record)
        return found


def kubeconfig(cluster: str, url: str) -> dict[str, Any]:
    name = f"{cluster}-sandbox"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
    }


@dataclass(frozen=True)
class RunningSandbox:
    url: str
    kubeconfig: Path
    clock: ScaledClock


def running_sandbox(paths: Paths, cluster: str) -> RunningSandbox | None:
    """The sandbox of ``cluster`` if it runs (what ``deployer daemon run`` connects to)."""
    server = SandboxServer(paths, cluster)
    info = server.status()
    clock = server.clock()
    if info is None or clock is None:
        return None
    if not server.kubeconfig_file.exists():
        server.write_kubeconfig(info.url)
    return RunningSandbox(info.url, server.kubeconfig_file, clock)


def start_sandbox(paths: Paths, cluster: str, *, speed: float = 1.0) -> LocalIMInfo:
    """Start the sandbox of a simulated deployment (no-op when it runs)."""
    from deployer.adapters.state.store import DeploymentStore
    from deployer.errors import UserError

    record = DeploymentStore(paths.state_db).get(cluster)
    if not record.dummy_vms:
        raise UserError(f"{cluster} runs on a real cloud: it has a real Kubernetes API, no sandbox")
    return SandboxServer(paths, cluster, speed=speed).start()


def stop_sandbox(paths: Paths, cluster: str) -> bool:
    """Stop the daemon and the sandbox of ``cluster`` (their files stay). Returns whether one ran."""
    stopped_daemon = SandboxDaemon(paths, cluster).stop()
    return SandboxServer(paths, cluster).stop() or stopped_daemon


def forget_sandbox(paths: Paths, cluster: str) -> None:
    """The deployment is destroyed: stop its sandbox and daemon and delete their files."""
    SandboxServer(paths, cluster).remove()


def stop_all_sandboxes(paths: Paths) -> list[str]:
    """``deployer local stop``: stop every sandbox and daemon (their objects stay for the next start)."""
    root = paths.state_dir / "sandbox"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [name for name in names if stop_sandbox(paths, name)]
