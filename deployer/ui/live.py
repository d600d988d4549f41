"""The elasticity daemon's live figures, read from its Prometheus ``/metrics`` endpoint.

``deployer ui --daemon-metrics CLUSTER=URL`` points the elasticity page of CLUSTER at a running daemon
(``deployer daemon run --metrics-port``). The endpoint is a peer like any other: it is read with a short
timeout and a size cap, and whatever it answers is parsed leniently (unknown or malformed lines skipped).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests

from deployer.errors import UserError

FETCH_TIMEOUT = (2.0, 3.0)  # connect, and each read
FETCH_DEADLINE_S = 5.0
MAX_BYTES = 1 << 20  # our daemon's page is a few kB; more is not a daemon of ours
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>.*)\})?\s+(?P<value>\S+)$")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


@dataclass
class LiveFigures:
    url: str
    pending_pods: int | None = None
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)  # group -> phase -> count
    decisions: dict[str, int] = field(default_factory=dict)  # kind -> total
    reconciles: int | None = None
    reconcile_errors: int = 0
    problem: str | None = None


class _Refused(Exception):
    pass


def _fetch(url: str, deadline_s: float) -> bytes:
    """The body, within ``deadline_s`` overall and ``MAX_BYTES``: a peer that drips bytes or never stops
    cannot hold the page."""
    stop = time.monotonic() + deadline_s
    chunks: list[bytes] = []
    size = 0
    with requests.get(url, timeout=FETCH_TIMEOUT, stream=True) as response:
        response.raise_for_status()
        # read1: whatever has arrived, so a slow drip is checked against the deadline as it comes.
        while chunk := response.raw.read1(8192, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BYTES:
                raise _Refused(f"more than {MAX_BYTES} bytes: not a daemon of ours")
            if time.monotonic() > stop:
                raise _Refused(f"still sending after {deadline_s:.0f}s")
    return b"".join(chunks)


def parse_targets(values: Sequence[str]) -> dict[str, str]:
    """``--daemon-metrics CLUSTER=URL`` flags to a mapping."""
    targets = {}
    for value in values:
        cluster, sep, url = value.partition("=")
        if not sep or not cluster or not url.startswith(("http://", "https://")):
            raise UserError(f"--daemon-metrics {value!r}: expected CLUSTER=http://HOST:PORT/metrics")
        targets[cluster] = url
    return targets


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None or line.startswith("#"):
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
        samples.append((match["name"], labels, value))
    return samples


def figures_from(url: str, text: str) -> LiveFigures:
    live = LiveFigures(url)
    for name, labels, value in parse_metrics(text):
        if name == "deployer_pending_pods":
            live.pending_pods = int(value)
        elif name == "deployer_nodes" and "group" in labels and "phase" in labels:
            live.nodes.setdefault(labels["group"], {})[labels["phase"]] = int(value)
        elif name == "deployer_decisions_total" and "kind" in labels:
            live.decisions[labels["kind"]] = live.decisions.get(labels["kind"], 0) + int(value)
        elif name == "deployer_reconciles_total":
            live.reconciles = int(value)
        elif name == "deployer_reconcile_errors_total":
            live.reconcile_errors += int(value)
    return live


def read_live(url: str, *, deadline_s: float = FETCH_DEADLINE_S) -> LiveFigures:
    """The daemon's figures now, or a ``problem`` saying why there are none."""
    try:
        body = _fetch(url, deadline_s)
    except (requests.RequestException, _Refused) as err:
        reason = str(err) if isinstance(err, _Refused) else f"no answer: {type(err).__name__}"
        return LiveFigures(url, problem=f"the daemon's metrics at {url}: {reason}")
    live = figures_from(url, body.decode("utf-8", "replace"))
    if live.pending_pods is None:
        live.problem = f"{url} answered without deployer's daemon metrics"
    return live
