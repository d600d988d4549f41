"""Metrics exposition over real HTTP on loopback, and the run lock across real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request

import pytest

from deployer.daemon.lock import LockHeld, run_lock
from deployer.daemon.metrics import DaemonMetrics, MetricsServer


def test_metrics_are_served_in_prometheus_text_format() -> None:
    metrics = DaemonMetrics()
    metrics.set_gauge("deployer_pending_pods", 4)
    metrics.inc("deployer_decisions_total", kind="scale_up", group="wn")
    metrics.inc("deployer_decisions_total", kind="scale_up", group="wn")
    with pytest.raises(RuntimeError), metrics.timed_call("im", "power_on"):
        raise RuntimeError("IM 500")
    server = MetricsServer(metrics, port=0, host="127.0.0.1").start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain")
    finally:
        server.stop()
    lines = body.splitlines()
    assert "deployer_pending_pods 4" in lines
    assert 'deployer_decisions_total{group="wn",kind="scale_up"} 2' in lines
    assert 'deployer_power_call_errors_total{backend="im",operation="power_on"} 1' in lines
    assert 'deployer_power_call_seconds_count{backend="im",operation="power_on"} 1' in lines
    assert "# TYPE deployer_nodes gauge" in lines


def test_a_second_run_is_refused_while_the_first_holds_the_lock(tmp_path) -> None:
    lock = tmp_path / "locks" / "c1.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from deployer.daemon.lock import run_lock
                with run_lock(Path({str(lock)!r})):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=str(holder.pid)), run_lock(lock):
            pass
    finally:
        holder.communicate("\n", timeout=10)
    with run_lock(lock):  # released when the holder exited
        pass
