"""Persistence of the elasticity daemon's memory (``ElasticityState``) in the SQLite state database.

Called by the daemon reconciler and actuator. Every node transition is written as it happens (``put``), before
the next side effect, so a daemon that restarts mid-operation resumes from what it already did: a node
recorded as ``powering_on`` is never powered on a second time. Rows are keyed by cluster name, so one state
database serves several clusters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from deployer.adapters.state.db import connect
from deployer.core.elasticity.model import ElasticityState, NodePhase, NodeRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS elasticity_nodes (
    cluster TEXT NOT NULL,
    name TEXT NOT NULL,
    node_group TEXT NOT NULL,
    phase TEXT NOT NULL,
    since REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    idle_since REAL,
    vm_id TEXT,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE IF NOT EXISTS elasticity_groups (
    cluster TEXT NOT NULL,
    node_group TEXT NOT NULL,
    backoff_until REAL,
    last_scale_up REAL,
    last_scale_down REAL,
    PRIMARY KEY (cluster, node_group)
);
"""


class NodeStateStore:
    """Load and save one cluster's ``ElasticityState``. Not shared between threads."""

    def __init__(self, path: Path, cluster: str) -> None:
        self.cluster = cluster
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def load(self) -> ElasticityState:
        records = {
            row["name"]: NodeRecord(
                name=row["name"],
                group=row["node_group"],
                phase=NodePhase(row["phase"]),
                since=row["since"],
                attempts=row["attempts"],
                idle_since=row["idle_since"],
                vm_id=row["vm_id"],
            )
            for row in self._conn.execute("SELECT * FROM elasticity_nodes WHERE cluster = ?", (self.cluster,))
        }
        backoff: dict[str, float] = {}
        ups: dict[str, float] = {}
        downs: dict[str, float] = {}
        for row in self._conn.execute("SELECT * FROM elasticity_groups WHERE cluster = ?", (self.cluster,)):
            for column, target in (
                ("backoff_until", backoff),
                ("last_scale_up", ups),
                ("last_scale_down", downs),
            ):
                if row[column] is not None:
                    target[row["node_group"]] = row[column]
        return ElasticityState(
            records=records, group_backoff_until=backoff, last_scale_up=ups, last_scale_down=downs
        )

    def put(self, record: NodeRecord) -> None:
        """Write one node's record now (one transaction): called right after each side effect."""
        with self._transaction():
            self._upsert(record)

    def remove(self, name: str) -> None:
        with self._transaction():
            self._conn.execute(
                "DELETE FROM elasticity_nodes WHERE cluster = ? AND name = ?", (self.cluster, name)
            )

    def save(self, state: ElasticityState) -> None:
        """Replace the stored state with ``state`` atomically."""
        with self._transaction():
            self._conn.execute("DELETE FROM elasticity_nodes WHERE cluster = ?", (self.cluster,))
            for record in state.records.values():
                self._upsert(record)
            self._conn.execute("DELETE FROM elasticity_groups WHERE cluster = ?", (self.cluster,))
            groups = set(state.group_backoff_until) | set(state.last_scale_up) | set(state.last_scale_down)
            self._conn.executemany(
                "INSERT INTO elasticity_groups VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        self.cluster,
                        group,
                        state.group_backoff_until.get(group),
                        state.last_scale_up.get(group),
                        state.last_scale_down.get(group),
                    )
                    for group in sorted(groups)
                ],
            )

    def _upsert(self, record: NodeRecord) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO elasticity_nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.cluster,
                record.name,
                record.group,
                record.phase.value,
                record.since,
                record.attempts,
                record.idle_since,
                record.vm_id,
            ),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK: the connection runs in autocommit mode (isolation_level=None)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


def records_in(state: ElasticityState, phases: Iterable[NodePhase]) -> list[NodeRecord]:
    wanted = set(phases)
    return [record for record in state.records.values() if record.phase in wanted]
