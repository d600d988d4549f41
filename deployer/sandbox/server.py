"""The sandbox cluster of a local deployment: the loopback API server with its control plane and the
simulated kubelets, persisted under DEPLOYER_HOME, run as a background process per deployment.

``Sandbox`` is the in-process cluster (tests drive it directly): every tick it follows the IM's VMs
(``DummyKubelets``), ends the grace period of evicted pods, collects orphaned pods, runs the Job
controller and the scheduler, completes pods whose run time is over, and writes its objects atomically to
``objects.json`` when they changed, so a restarted sandbox keeps them (watchers relist after a 410).

``SandboxServer`` starts and stops that process like the embedded IM (``BackgroundServer``: a session of
its own, ``server.json`` with pid/port/url, loopback only), and ``SandboxDaemon`` does the same for
``deployer daemon run --cluster NAME`` against it (its metrics port is its health check). Called by
``deployer kubeconfig``, ``daemon run``, ``destroy``, ``local stop``, ``demo`` and after ``create``.
Process entry point: ``python -m deployer.sandbox.server --cluster NAME ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.adapters.im.local_server import BackgroundServer, LocalIMInfo
from deployer.adapters.state.secrets import write_private
from deployer.clock import ScaledClock
from deployer.core.spec import ClusterSpec
from deployer.errors import DeployerError, RemoteError
from deployer.paths import Paths, ensure_private_dir
from deployer.sandbox.api import ApiError, FakeKubeAPI
from deployer.sandbox.control_plane import FakeControlPlane
from deployer.sandbox.kubelets import DummyKubelets, VMLister, register_front

log = logging.getLogger(__name__)

SERVER_MODULE = "deployer.sandbox.server"
OBJECTS_FILE = "objects.json"
KUBECONFIG_FILE = "kubeconfig.yaml"
TICK_SECONDS = 0.05  # real seconds between control-plane passes (kube-scheduler reacts within ms)
IM_POLL_SECONDS = 1.0  # real seconds between looks at the IM's VMs
SAVE_SECONDS = 0.5  # real seconds between writes of the objects while they change


def sandbox_dir(paths: Paths, cluster: str) -> Path:
    return paths.state_dir / "sandbox" / cluster


class Sandbox:
    """One sandbox cluster in this process. ``vms``/``spec`` (the IM's VMs and the deployment's worker
    groups) make the kubelets follow the IM; without them only the front-end node exists."""

    def __init__(
        self,
        root: Path,
        *,
        clock: ScaledClock,
        spec: ClusterSpec | None = None,
        vms: VMLister | None = None,
        port: int = 0,
    ) -> None:
        self.root = root
        saved = read_objects(root)
        if saved is None and self.objects_file.exists():
            # Written atomically, so only a hand edit or a full disk gets here: keep it for the user.
            aside = self.objects_file.with_name(f"{OBJECTS_FILE}.unreadable")
            os.replace(self.objects_file, aside)
            log.warning("the sandbox's objects in %s cannot be read; starting empty", aside)
        self.clock = ScaledClock.from_json(saved["clock"]) if saved and "clock" in saved else clock
        self.api = FakeKubeAPI(port=port, clock=self.clock.time, record_requests=False)
        self.api.hold_evicted_pods = True  # the kubelets end evicted pods on the next tick
        self.control = FakeControlPlane(self.api)
        self.kubelets = DummyKubelets(self.api, spec, vms) if spec is not None and vms is not None else None
        if saved:
            self.api.restore(saved["api"])
            if self.kubelets is not None:
                self.kubelets.restore(saved.get("vms") or [])
        self._saved_rv = self.api.resource_version if saved else -1
        self._saved_lives: list[dict[str, Any]] = []
        self._next_im_poll = 0.0
        self._next_save = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sandbox-control-plane", daemon=True)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def objects_file(self) -> Path:
        return self.root / OBJECTS_FILE

    def start(self) -> Sandbox:
        ensure_private_dir(self.root)
        self.api.start()
        register_front(self.api)
        self.save()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.save()
        self.api.stop()

    def tick(self) -> None:
        """One pass of the control plane (and, at most every ``IM_POLL_SECONDS``, of the kubelets)."""
        if self.kubelets is not None and time.monotonic() >= self._next_im_poll:
            self._next_im_poll = time.monotonic() + IM_POLL_SECONDS
            try:
                self.kubelets.sync()
            except DeployerError as err:
                log.warning("cannot read the IM's VMs (kubelets keep their state): %s", err)
        if self.kubelets is not None:
            self.kubelets.advance()
        self.control.reap_terminating()
        self.control.collect_garbage()
        self.control.sync_jobs()
        self.control.schedule()
        self.control.finish_due_pods()
        if time.monotonic() >= self._next_save:
            self._next_save = time.monotonic() + SAVE_SECONDS
            self.save(only_if_changed=True)

    def save(self, *, only_if_changed: bool = False) -> None:
        lives = self.kubelets.dump() if self.kubelets is not None else []
        if only_if_changed and self.api.resource_version == self._saved_rv and lives == self._saved_lives:
            return
        dump = self.api.dump()
        state = {"clock": self.clock.to_json(), "port": self.api.port, "api": dump, "vms": lives}
        write_private(self.objects_file, json.dumps(state))
        self._saved_rv, self._saved_lives = dump["resourceVersion"], lives

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except ApiError as err:  # a client changed an object under us: the next tick sees it anew
                log.debug("control-plane pass raced a client write: %s", err.message)
            except Exception:  # the control plane must outlive any bug in one pass
                log.exception("control-plane pass failed")


def read_objects(root: Path) -> dict[str, Any] | None:
    """The persisted sandbox state (clock, port, objects, VM lives), or None."""
    try:
        data = json.loads((root / OBJECTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- background processes -----------------------------------------------------------------------------


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
    import socket

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


# -- process entry point ------------------------------------------------------------------------------


def _open_im(paths: Paths, cluster: str) -> tuple[ClusterSpec | None, VMLister | None]:
    """The deployment's worker groups and its VMs in the IM, as the daemon sees them."""
    from deployer.adapters.power.im import IMPowerManager
    from deployer.adapters.state.store import DeploymentStore
    from deployer.daemon.config import spec_from_tosca
    from deployer.lifecycle.credentials import endpoint_for_record

    record = DeploymentStore(paths.state_db).get(cluster)
    try:
        spec = spec_from_tosca(record.tosca_redacted, cluster)
    except DeployerError:
        return None, None  # elasticity off: no worker groups to follow
    if record.infrastructure_id is None:
        raise RemoteError(f"{cluster} has no infrastructure id yet")
    client = endpoint_for_record(paths, record).client()
    return spec, IMPowerManager(client, record.infrastructure_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the sandbox Kubernetes API of a local deployment.")
    parser.add_argument("--config-dir", required=True, type=Path)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    paths = Paths(config_dir=args.config_dir, state_dir=args.state_dir)
    spec, vms = _open_im(paths, args.cluster)
    sandbox = Sandbox(
        sandbox_dir(paths, args.cluster),
        clock=ScaledClock.starting_now(args.speed),
        spec=spec,
        vms=vms,
        port=args.port,
    ).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    log.info("sandbox of %s on %s (speed %gx)", args.cluster, sandbox.url, sandbox.clock.speed)
    stop.wait()
    sandbox.stop()
    log.info("sandbox of %s stopped; objects kept in %s", args.cluster, sandbox.objects_file)


if __name__ == "__main__":
    main()
