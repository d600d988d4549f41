"""Persistence of the elasticity daemon's memory (``ElasticityState``) in the SQLite state database.

Called by the daemon reconciler and actuator. Every node transition is written as it happens (``put``), before
the next side effect, so a daemon that restarts mid-operation resumes from what it already did: a node
recorded as ``powering_on`` is never powered on a second time. Rows are keyed by cluster name, so one state
database serves several clusters.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from deployer.adapters.state.db import session, transaction
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
    underutilized_since REAL,
    PRIMARY KEY (cluster, name)
);
CREATE TABLE IF NOT EXISTS elasticity_groups (
    cluster TEXT NOT NULL,
    node_group TEXT NOT NULL,
    backoff_until REAL,
    last_scale_up REAL,
    last_scale_down REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    scale_up_rounds TEXT,
    PRIMARY KEY (cluster, node_group)
);
"""


class NodeStateStore:
    """Load and save one cluster's ``ElasticityState``. Each call opens its own short-lived connection, so
    one store may be used from any thread (the daemon loop runs rounds off the main thread)."""

    def __init__(self, path: Path, cluster: str) -> None:
        self.cluster = cluster
        self._path = path
        with session(self._path) as conn:
            conn.executescript(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(elasticity_groups)")}
            if "scale_up_rounds" not in columns:  # a database written before the column existed
                conn.execute("ALTER TABLE elasticity_groups ADD COLUMN scale_up_rounds TEXT")

    def load(self) -> ElasticityState:
        with session(self._path) as conn:
            return self._load(conn)

    def _load(self, conn: sqlite3.Connection) -> ElasticityState:
        records = {
            row["name"]: NodeRecord(
                name=row["name"],
                group=row["node_group"],
                phase=NodePhase(row["phase"]),
                since=row["since"],
                attempts=row["attempts"],
                idle_since=row["idle_since"],
                vm_id=row["vm_id"],
                underutilized_since=row["underutilized_since"],
            )
            for row in conn.execute("SELECT * FROM elasticity_nodes WHERE cluster = ?", (self.cluster,))
        }
        backoff: dict[str, float] = {}
        ups: dict[str, float] = {}
        downs: dict[str, float] = {}
        failures: dict[str, int] = {}
        rounds: dict[str, tuple[float, ...]] = {}
        for row in conn.execute("SELECT * FROM elasticity_groups WHERE cluster = ?", (self.cluster,)):
            if row["failures"]:
                failures[row["node_group"]] = row["failures"]
            if row["scale_up_rounds"]:
                rounds[row["node_group"]] = tuple(float(t) for t in json.loads(row["scale_up_rounds"]))
            for column, target in (
                ("backoff_until", backoff),
                ("last_scale_up", ups),
                ("last_scale_down", downs),
            ):
                if row[column] is not None:
                    target[row["node_group"]] = row[column]
        return ElasticityState(
            records=records,
            group_backoff_until=backoff,
            last_scale_up=ups,
            last_scale_down=downs,
            group_failures=failures,
            scale_up_rounds=rounds,
        )

    def put(self, record: NodeRecord) -> None:
        """Write one node's record now (one transaction)."""
        with transaction(self._path) as conn:
            self._upsert(conn, record)

    def remove(self, name: str) -> None:
        with transaction(self._path) as conn:
            conn.execute("DELETE FROM elasticity_nodes WHERE cluster = ? AND name = ?", (self.cluster, name))

    def save(self, state: ElasticityState) -> None:
        """Replace the stored state with ``state`` atomically."""
        with transaction(self._path) as conn:
            conn.execute("DELETE FROM elasticity_nodes WHERE cluster = ?", (self.cluster,))
            for record in state.records.values():
                self._upsert(conn, record)
            conn.execute("DELETE FROM elasticity_groups WHERE cluster = ?", (self.cluster,))
            groups = (
                set(state.group_backoff_until)
                | set(state.last_scale_up)
                | set(state.last_scale_down)
                | set(state.group_failures)
                | set(state.scale_up_rounds)
            )
            conn.executemany(
                "INSERT INTO elasticity_groups (cluster, node_group, backoff_until, last_scale_up, "
                "last_scale_down, failures, scale_up_rounds) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        self.cluster,
                        group,
                        state.group_backoff_until.get(group),
                        state.last_scale_up.get(group),
                        state.last_scale_down.get(group),
                        state.group_failures.get(group, 0),
                        json.dumps(list(state.scale_up_rounds[group]))
                        if group in state.scale_up_rounds
                        else None,
                    )
                    for group in sorted(groups)
                ],
            )

    def _upsert(self, conn: sqlite3.Connection, record: NodeRecord) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO elasticity_nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.cluster,
                record.name,
                record.group,
                record.phase.value,
                record.since,
                record.attempts,
                record.idle_since,
                record.vm_id,
                record.underutilized_since,
            ),
        )
