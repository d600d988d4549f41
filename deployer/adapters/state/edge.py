"""The edge_hosts table: which boards are joined to which cluster.

Called by ``deployer.lifecycle.edge`` (join, list, remove); the daemon's edge power manager may read
``mac`` for Wake-on-LAN. A host is written only after its join succeeded, and deleted only after its
removal did, so a failed host is never recorded as joined.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.state.db import session

_COLUMNS = "cluster, host, node_name, node_group, ssh_user, ssh_key, mac, joined_at"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS edge_hosts (
    cluster TEXT NOT NULL,
    host TEXT NOT NULL,
    node_name TEXT NOT NULL,
    node_group TEXT NOT NULL,
    ssh_user TEXT NOT NULL,
    ssh_key TEXT,
    mac TEXT,
    joined_at REAL NOT NULL,
    PRIMARY KEY (cluster, host)
)
"""


@dataclass(frozen=True)
class EdgeHostRecord:
    cluster: str
    host: str
    node_name: str
    node_group: str
    ssh_user: str
    ssh_key: str | None = None
    mac: str | None = None
    joined_at: float = 0.0


class EdgeHostStore:
    """Joined edge hosts in ``state.db``; each call opens its own short connection."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with session(path) as conn:
            conn.execute(_SCHEMA)

    def record_joined(self, record: EdgeHostRecord, *, now: float | None = None) -> EdgeHostRecord:
        """Insert or refresh one joined host (a re-join updates group, key and MAC)."""
        stamp = time.time() if now is None else now
        with session(self._path) as conn:
            conn.execute(
                f"INSERT INTO edge_hosts ({_COLUMNS})"  # noqa: S608 - a constant column list
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (cluster, host) DO UPDATE SET node_name = excluded.node_name,"
                " node_group = excluded.node_group, ssh_user = excluded.ssh_user, ssh_key = excluded.ssh_key,"
                " mac = COALESCE(excluded.mac, edge_hosts.mac)",
                (
                    record.cluster,
                    record.host,
                    record.node_name,
                    record.node_group,
                    record.ssh_user,
                    record.ssh_key,
                    record.mac,
                    stamp,
                ),
            )
        return self.get(record.cluster, record.host) or record

    def remove(self, cluster: str, host: str) -> bool:
        with session(self._path) as conn:
            cursor = conn.execute("DELETE FROM edge_hosts WHERE cluster = ? AND host = ?", (cluster, host))
            return cursor.rowcount > 0

    def get(self, cluster: str, host: str) -> EdgeHostRecord | None:
        rows = self._select("WHERE cluster = ? AND host = ?", (cluster, host))
        return rows[0] if rows else None

    def list(self, cluster: str) -> list[EdgeHostRecord]:
        return self._select("WHERE cluster = ? ORDER BY host", (cluster,))

    def _select(self, where: str, args: tuple[str, ...]) -> list[EdgeHostRecord]:
        with session(self._path) as conn:
            sql = f"SELECT {_COLUMNS} FROM edge_hosts {where}"  # noqa: S608 - fixed clauses only
            rows = conn.execute(sql, args).fetchall()
        return [EdgeHostRecord(**dict(row)) for row in rows]
