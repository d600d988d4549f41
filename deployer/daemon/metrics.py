"""Prometheus metrics of the elasticity daemon, in the plain text exposition format (no extra dependency).

The reconciler and the power-manager wrapper update a ``DaemonMetrics``; ``serve_metrics`` exposes it on
``/metrics`` from a daemon thread for ``deployer daemon run --metrics-port``. Thread-safe: the HTTP thread
reads while the loop writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import monotonic

Labels = tuple[tuple[str, str], ...]

_HELP = {
    "deployer_pending_pods": ("gauge", "Pending unschedulable pods seen in the last reconcile."),
    "deployer_nodes": ("gauge", "Managed nodes by node group and life-cycle phase."),
    "deployer_decisions_total": ("counter", "Decisions taken, by kind (scale_up, scale_down, mark_failed)."),
    "deployer_reconciles_total": ("counter", "Reconcile rounds run."),
    "deployer_reconcile_errors_total": ("counter", "Reconcile rounds that failed, by error class."),
    "deployer_power_call_seconds": ("summary", "Latency of power-manager calls (IM, Wake-on-LAN, SSH)."),
    "deployer_power_call_errors_total": ("counter", "Failed power-manager calls, by backend and operation."),
    "deployer_token_expiry_seconds": ("gauge", "Seconds left on the IM access token (below 0: expired)."),
    "deployer_token_refreshes_total": ("counter", "New IM access tokens obtained."),
    "deployer_token_refresh_failures_total": ("counter", "Failed attempts to refresh the IM access token."),
}


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _format(name: str, labels: Labels, value: float) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class DaemonMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, float]] = {name: {} for name in _HELP}
        self._summaries: dict[str, dict[Labels, tuple[float, int]]] = {name: {} for name in _HELP}

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[name][_labels(labels)] = value

    def replace_gauge(self, name: str, series: Mapping[Labels, float]) -> None:
        """Swap a whole gauge family at once, so series that vanished (a deleted group) disappear."""
        with self._lock:
            self._values[name] = dict(series)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            family = self._values[name]
            family[key] = family.get(key, 0.0) + amount

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            total, count = self._summaries[name].get(key, (0.0, 0))
            self._summaries[name][key] = (total + seconds, count + 1)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values[name].get(_labels(labels), 0.0)

    @contextmanager
    def timed_call(self, backend: str, operation: str) -> Iterator[None]:
        """Time one power-manager call and count it as an error if it raises."""
        start = monotonic()
        try:
            yield
        except Exception:
            self.inc("deployer_power_call_errors_total", backend=backend, operation=operation)
            raise
        finally:
            self.observe(
                "deployer_power_call_seconds", monotonic() - start, backend=backend, operation=operation
            )

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            values = {name: dict(series) for name, series in self._values.items()}
            summaries = {name: dict(series) for name, series in self._summaries.items()}
        for name, (kind, help_text) in _HELP.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for labels, value in sorted(values[name].items()):
                lines.append(_format(name, labels, value))
            for labels, (total, count) in sorted(summaries[name].items()):
                lines.append(_format(f"{name}_sum", labels, total))
                lines.append(_format(f"{name}_count", labels, count))
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``/metrics`` on ``host:port`` from a daemon thread. ``port=0`` picks a free port (tests)."""

    def __init__(self, metrics: DaemonMetrics, port: int, host: str = "127.0.0.1") -> None:
        registry = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = registry.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # scrapes are not worth a log line
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
