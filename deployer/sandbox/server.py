"""The sandbox cluster of a local deployment: the loopback API server with its control plane and the
simulated kubelets, persisted under DEPLOYER_HOME, run as a background process per deployment.

``Sandbox`` is the in-process cluster (tests drive it directly): every tick it follows the IM's VMs
(``DummyKubelets``), ends the grace period of evicted pods, collects orphaned pods, runs the Job
controller and the scheduler, completes pods whose run time is over, and writes its objects atomically to
``objects.json`` when they changed, so a restarted sandbox keeps them (watchers relist after a 410).

Process entry point: ``python -m deployer.sandbox.server --cluster NAME ...``, started and stopped by
``deployer.sandbox.processes.SandboxServer``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from deployer.adapters.state.secrets import write_private
from deployer.clock import ScaledClock
from deployer.core.spec import ClusterSpec
from deployer.errors import DeployerError, RemoteError
from deployer.paths import Paths, ensure_private_dir
from deployer.sandbox.api import ApiError, FakeKubeAPI
from deployer.sandbox.control_plane import FakeControlPlane
from deployer.sandbox.kubelets import DummyKubelets, VMLister, register_front
from deployer.sandbox.processes import OBJECTS_FILE, read_objects, sandbox_dir

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # real seconds between control-plane passes (kube-scheduler reacts within ms)
IM_POLL_SECONDS = 1.0  # real seconds between looks at the IM's VMs
SAVE_SECONDS = 0.5  # real seconds between writes of the objects while they change


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
