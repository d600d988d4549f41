"""The deployments table: what deployer remembers about each cluster it created.

Called by the life-cycle use cases (``deployer.lifecycle``). One row per deployment name: where it
lives (IM URL, infrastructure id), what it was built from (cloud, spec hash, redacted TOSCA, the
deployment tag embedded in the TOSCA) and the last state seen. Never a secret: text is passed through
the log redactor before it is written, on top of callers storing only the redacted TOSCA.

Every write is one ``BEGIN IMMEDIATE`` transaction, so concurrent deployer processes serialise on the
SQLite write lock (WAL mode, busy timeout from ``deployer.adapters.state.db``) instead of interleaving.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

from deployer.adapters.state.db import connect
from deployer.errors import NotFoundError, UserError
from deployer.logs import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    cloud TEXT NOT NULL,
    im_url TEXT NOT NULL,
    infrastructure_id TEXT,
    deployment_tag TEXT NOT NULL UNIQUE,
    spec_hash TEXT NOT NULL,
    tosca_redacted TEXT NOT NULL,
    status TEXT NOT NULL,
    auth_file TEXT,
    clouds TEXT NOT NULL DEFAULT '',
    insecure INTEGER NOT NULL DEFAULT 0,
    simulated INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""
# Columns added after the first release: (name, SQL definition), added to older databases on open.
_ADDED_COLUMNS = (
    ("landing_deadline", "REAL NOT NULL DEFAULT 0"),
    ("pending_change", "TEXT"),
)
# Which deployment tag each infrastructure of an IM carries ('' for none): an infrastructure's template
# keeps its tag for life, so each is read from the IM once, however often deployer looks for duplicates.
_TAGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS infrastructure_tags (
    im_url TEXT NOT NULL,
    infrastructure_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    PRIMARY KEY (im_url, infrastructure_id)
)
"""

# Status of a row whose create request went out but whose infrastructure id is not known yet.
STATUS_SUBMITTING = "submitting"


@dataclass(frozen=True)
class DeploymentRecord:
    name: str
    cloud: str
    im_url: str
    infrastructure_id: str | None
    deployment_tag: str
    spec_hash: str
    tosca_redacted: str
    status: str
    # Where the credentials came from when the user passed --auth-file (a path, never the content).
    auth_file: str | None = None
    # Every cloud the cluster uses, front end's first, comma-separated (multi-cloud credentials).
    clouds: str = ""
    # The user turned TLS verification of the IM off at create (--insecure): later commands keep it off.
    insecure: bool = False
    # Simulated (Dummy) VMs: no command may contact their made-up addresses.
    simulated: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    # Until then a create request sent for this record may still land in the IM (it was not answered):
    # the record may not be dropped, nor the template sent again, before it.
    landing_deadline: float = 0.0
    # A change sent to the IM that was not answered (JSON: what, and until when it may still land).
    pending_change: str | None = None

    @property
    def dummy_vms(self) -> bool:
        """True when the VMs are simulated: never SSH to (or otherwise contact) their addresses. The
        built-in ``local`` cloud always is, whatever an older or hand-made record says."""
        return self.simulated or self.cloud == "local"


_COLUMNS = tuple(f.name for f in fields(DeploymentRecord))
_INSERT = f"INSERT INTO deployments ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608
_MUTABLE = frozenset(
    {
        "im_url",
        "infrastructure_id",
        "spec_hash",
        "tosca_redacted",
        "status",
        "landing_deadline",
        "pending_change",
    }
)


class DeploymentStore:
    """The deployments table in ``state.db``. Cheap to open; each call uses its own short transaction."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with self._write() as conn:
            conn.execute(_SCHEMA)
            conn.execute(_TAGS_SCHEMA)
            present = {row["name"] for row in conn.execute("PRAGMA table_info(deployments)")}
            for column, definition in _ADDED_COLUMNS:
                if column not in present:
                    conn.execute(f"ALTER TABLE deployments ADD COLUMN {column} {definition}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self._path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        conn = connect(self._path)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def add(self, record: DeploymentRecord, *, now: float | None = None) -> DeploymentRecord:
        """Insert a new deployment; the name must be free."""
        stamp = time.time() if now is None else now
        row = replace(
            record, tosca_redacted=redact(record.tosca_redacted), created_at=stamp, updated_at=stamp
        )
        try:
            with self._write() as conn:
                conn.execute(_INSERT, tuple(getattr(row, col) for col in _COLUMNS))
        except sqlite3.IntegrityError:
            raise UserError(
                f"a deployment named {record.name!r} already exists; pick another --name or destroy it first"
            ) from None
        return row

    def update(
        self, name: str, *, now: float | None = None, **changes: str | float | None
    ) -> DeploymentRecord:
        """Change some columns of one deployment (status, infrastructure_id, ...)."""
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if "tosca_redacted" in changes and changes["tosca_redacted"] is not None:
            changes["tosca_redacted"] = redact(changes["tosca_redacted"])
        stamp = time.time() if now is None else now
        assignments = ", ".join(f"{col} = ?" for col in changes)
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE deployments SET {assignments}, updated_at = ? WHERE name = ?",  # noqa: S608
                (*changes.values(), stamp, name),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(f"no deployment named {name!r}; see `deployer list`")
        return self.get(name)

    def delete(self, name: str) -> bool:
        """Forget a deployment. Returns False when there was nothing to forget."""
        with self._write() as conn:
            return conn.execute("DELETE FROM deployments WHERE name = ?", (name,)).rowcount > 0

    def find(self, name: str) -> DeploymentRecord | None:
        rows = self._read(f"SELECT {', '.join(_COLUMNS)} FROM deployments WHERE name = ?", (name,))  # noqa: S608
        return _record(rows[0]) if rows else None

    def get(self, name: str) -> DeploymentRecord:
        record = self.find(name)
        if record is None:
            raise NotFoundError(f"no deployment named {name!r}; see `deployer list`")
        return record

    def all(self) -> list[DeploymentRecord]:
        rows = self._read(f"SELECT {', '.join(_COLUMNS)} FROM deployments ORDER BY created_at, name")  # noqa: S608
        return [_record(row) for row in rows]

    def known_tags(self, im_url: str) -> dict[str, str]:
        """Infrastructure id -> tag ('' for none) as last read from ``im_url``."""
        rows = self._read(
            "SELECT infrastructure_id, tag FROM infrastructure_tags WHERE im_url = ?", (im_url,)
        )
        return {row["infrastructure_id"]: row["tag"] for row in rows}

    def remember_tags(self, im_url: str, tags: dict[str, str], *, live: set[str]) -> None:
        """Record newly read tags and forget infrastructures the IM no longer lists."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO infrastructure_tags VALUES (?, ?, ?)",
                [(im_url, inf_id, tag) for inf_id, tag in tags.items()],
            )
            known = conn.execute(
                "SELECT infrastructure_id FROM infrastructure_tags WHERE im_url = ?", (im_url,)
            ).fetchall()
            conn.executemany(
                "DELETE FROM infrastructure_tags WHERE im_url = ? AND infrastructure_id = ?",
                [(im_url, row[0]) for row in known if row[0] not in live],
            )


def _record(row: sqlite3.Row) -> DeploymentRecord:
    values = dict(row)
    for flag in ("insecure", "simulated"):
        values[flag] = bool(values[flag])  # SQLite stores booleans as 0/1
    return DeploymentRecord(**values)
