"""Reading a daemon's /metrics for the dashboard: our own exposition parsed back, and peers that drip bytes,
send too much, or are not our daemon."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from deployer.daemon.metrics import DaemonMetrics
from deployer.errors import UserError
from deployer.ui.live import MAX_BYTES, figures_from, parse_targets, read_live


def test_the_daemons_own_exposition_parses_back():
    metrics = DaemonMetrics()
    metrics.set_gauge("deployer_pending_pods", 3)
    metrics.replace_gauge("deployer_nodes", {(("group", 'we"ird'), ("phase", "idle")): 1})
    metrics.inc("deployer_decisions_total", 2, kind="scale_down", group="wn")
    metrics.inc("deployer_reconcile_errors_total", error="TransientError")
    metrics.observe("deployer_power_call_seconds", 0.5, backend="im", operation="create")
    live = figures_from("u", metrics.render())
    assert live.pending_pods == 3
    assert live.nodes == {'we\\"ird': {"idle": 1}}
    assert live.decisions == {"scale_down": 2} and live.reconcile_errors == 1 and live.reconciles is None


def test_targets_need_a_cluster_and_an_http_url():
    assert parse_targets(["c1=http://127.0.0.1:9464/metrics"]) == {"c1": "http://127.0.0.1:9464/metrics"}
    for bad in ("c1", "=http://x", "c1=file:///etc/passwd"):
        with pytest.raises(UserError, match="--daemon-metrics"):
            parse_targets([bad])


def _peer(body_chunks: Iterator[bytes], delay: float) -> tuple[str, threading.Event]:
    """A loopback HTTP peer answering 200 and then the chunks, ``delay`` apart, without a length."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.recv(4096)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
                for chunk in body_chunks:
                    if done.is_set():
                        return
                    conn.sendall(chunk)
                    time.sleep(delay)
            except OSError:
                return  # the reader gave up: what we want

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/metrics", done


def test_a_peer_that_drips_is_cut_at_the_deadline():
    url, done = _peer((b"#" for _ in range(200)), 0.1)
    try:
        live = read_live(url, deadline_s=1.0)
    finally:
        done.set()
    assert live.problem is not None and "still sending after 1s" in live.problem


def test_a_peer_that_floods_is_cut_at_the_size_cap():
    url, done = _peer((b"x" * 65536 for _ in range(MAX_BYTES // 65536 + 8)), 0.0)
    try:
        live = read_live(url)
    finally:
        done.set()
    assert live.problem is not None and f"more than {MAX_BYTES} bytes" in live.problem


def test_a_peer_that_is_not_our_daemon():
    url, done = _peer(iter([b"<html>hello</html>\n"]), 0.0)
    live = read_live(url)
    done.set()
    assert live.problem is not None and "without deployer's daemon metrics" in live.problem
