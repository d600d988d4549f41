"""What the elasticity daemon saw and decided, round by round, kept in the SQLite state database.

Written by the reconciler after every round that acted (``Reconciler(history=...)``); read by the web
dashboard (``deployer ui``) to draw pending pods and nodes per group over time and to list the decisions
with their reasons. Bounded: only the newest ``keep`` rounds and decisions of a cluster are kept, so a
daemon running for months does not grow the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.state.db import session, transaction
from deployer.core.elasticity.model import Plan

_SCHEMA = """
CREATE TABLE IF NOT EXISTS elasticity_rounds (
    cluster TEXT NOT NULL,
    at REAL NOT NULL,
    pending_pods INTEGER NOT NULL,
    nodes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS elasticity_rounds_by_cluster ON elasticity_rounds (cluster, at);
CREATE TABLE IF NOT EXISTS elasticity_decisions (
    cluster TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    node_group TEXT NOT NULL,
    nodes TEXT NOT NULL,
    count INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS elasticity_decisions_by_cluster ON elasticity_decisions (cluster, at);
"""
DEFAULT_KEEP = 2000


@dataclass(frozen=True)
class RoundSample:
    at: float
    pending_pods: int
    nodes: Mapping[str, Mapping[str, int]]  # group -> phase -> count


@dataclass(frozen=True)
class Decision:
    at: float
    kind: str  # scale_up | scale_down | mark_failed
    group: str
    nodes: tuple[str, ...]
    count: int
    reason: str


def decisions_of(plan: Plan, at: float) -> list[Decision]:
    """The plan's decisions as rows (unplaceable pods are no decision: ``daemon explain`` lists them)."""
    rows = [Decision(at, "scale_up", up.group, up.nodes, up.count, up.reason) for up in plan.scale_ups]
    rows += [
        Decision(at, "scale_down", down.group, down.nodes, len(down.nodes), down.reason)
        for down in plan.scale_downs
    ]
    rows += [Decision(at, "mark_failed", f.group or "", (f.node,), 1, f.reason) for f in plan.failures]
    return rows


class ElasticityHistory:
    """One cluster's round samples and decisions. Each call opens its own short connection (thread-safe)."""

    def __init__(self, path: Path, cluster: str, *, keep: int = DEFAULT_KEEP) -> None:
        self.cluster = cluster
        self._path = path
        self._keep = keep
        with session(path) as conn:
            conn.executescript(_SCHEMA)

    def record_round(self, sample: RoundSample, decisions: list[Decision]) -> None:
        with transaction(self._path) as conn:
            conn.execute(
                "INSERT INTO elasticity_rounds VALUES (?, ?, ?, ?)",
                (self.cluster, sample.at, sample.pending_pods, json.dumps(sample.nodes, sort_keys=True)),
            )
            conn.executemany(
                "INSERT INTO elasticity_decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.cluster, d.at, d.kind, d.group, json.dumps(list(d.nodes)), d.count, d.reason)
                    for d in decisions
                ],
            )
            for table in ("elasticity_rounds", "elasticity_decisions"):
                conn.execute(
                    f"DELETE FROM {table} WHERE cluster = ? AND rowid NOT IN "  # noqa: S608 - fixed names
                    f"(SELECT rowid FROM {table} WHERE cluster = ? ORDER BY at DESC LIMIT ?)",
                    (self.cluster, self.cluster, self._keep),
                )

    def samples(self, since: float | None = None) -> list[RoundSample]:
        """Oldest first."""
        with session(self._path) as conn:
            rows = conn.execute(
                "SELECT at, pending_pods, nodes FROM elasticity_rounds WHERE cluster = ? AND at >= ? "
                "ORDER BY at",
                (self.cluster, since if since is not None else float("-inf")),
            ).fetchall()
        return [RoundSample(row["at"], row["pending_pods"], json.loads(row["nodes"])) for row in rows]

    def decisions(self, limit: int = 100) -> list[Decision]:
        """Newest first."""
        with session(self._path) as conn:
            rows = conn.execute(
                "SELECT * FROM elasticity_decisions WHERE cluster = ? ORDER BY at DESC, rowid DESC LIMIT ?",
                (self.cluster, limit),
            ).fetchall()
        return [
            Decision(
                row["at"],
                row["kind"],
                row["node_group"],
                tuple(json.loads(row["nodes"])),
                row["count"],
                row["reason"],
            )
            for row in rows
        ]
