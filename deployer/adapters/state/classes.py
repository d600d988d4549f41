"""Teaching classes in the SQLite state database: which deployments belong to which class.

Called by ``deployer.lifecycle.classroom``. Membership is recorded, never guessed from name prefixes: a
member row (team number, deployment name, deployment tag) is written before its create request leaves,
so an interrupted ``class create`` always leaves a row that says what may exist in the IM, and
``class destroy`` only ever touches the deployments (and the tags) listed here. Never a secret: the
class row keeps the path of an auth file, not its content.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from deployer.adapters.state.db import session, transaction
from deployer.errors import NotFoundError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS classes (
    prefix TEXT PRIMARY KEY,
    spec_file TEXT,
    cloud TEXT,
    im_url TEXT,
    auth_file TEXT,
    insecure INTEGER NOT NULL DEFAULT 0,
    teams INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS class_members (
    prefix TEXT NOT NULL REFERENCES classes(prefix),
    team INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE,
    deployment_tag TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (prefix, team)
);
"""

# Member states. "planned": nothing submitted yet; "creating": a create may be in flight or done;
# "ready": configured; "failed": gave up after the retries; "destroyed": gone (row kept until all are).
PLANNED, CREATING, READY, FAILED = "planned", "creating", "ready", "failed"


@dataclass(frozen=True)
class ClassRecord:
    prefix: str
    teams: int
    spec_file: str | None = None
    cloud: str | None = None
    im_url: str | None = None
    auth_file: str | None = None
    insecure: bool = False
    created_at: float = 0.0


@dataclass(frozen=True)
class Member:
    prefix: str
    team: int
    name: str
    deployment_tag: str
    status: str
    attempts: int = 0
    error: str | None = None
    updated_at: float = 0.0


class ClassStore:
    """Each call opens its own short connection, so one store may be used from many threads."""

    def __init__(self, path: Path) -> None:
        self._path = path
        with session(path) as conn:
            conn.executescript(_SCHEMA)

    def find(self, prefix: str) -> ClassRecord | None:
        with session(self._path) as conn:
            row = conn.execute("SELECT * FROM classes WHERE prefix = ?", (prefix,)).fetchone()
        if row is None:
            return None
        values = dict(row)
        values["insecure"] = bool(values["insecure"])
        return ClassRecord(**values)

    def all(self) -> list[ClassRecord]:
        """Every class, oldest first."""
        with session(self._path) as conn:
            rows = conn.execute("SELECT * FROM classes ORDER BY created_at, prefix").fetchall()
        return [ClassRecord(**{**dict(row), "insecure": bool(row["insecure"])}) for row in rows]

    def get(self, prefix: str) -> ClassRecord:
        found = self.find(prefix)
        if found is None:
            raise NotFoundError(
                f"no class {prefix!r}; create it with `deployer class create SPEC --prefix {prefix}`"
            )
        return found

    def save_class(self, record: ClassRecord) -> ClassRecord:
        """Insert the class, or grow its team count (the other settings of a re-run are the first run's)."""
        with transaction(self._path) as conn:
            conn.execute(
                "INSERT INTO classes"
                " (prefix, spec_file, cloud, im_url, auth_file, insecure, teams, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(prefix) DO UPDATE SET teams = MAX(teams, excluded.teams)",
                (
                    record.prefix,
                    record.spec_file,
                    record.cloud,
                    record.im_url,
                    record.auth_file,
                    int(record.insecure),
                    record.teams,
                    time.time(),
                ),
            )
        return self.get(record.prefix)

    def plan_member(self, prefix: str, team: int, name: str, deployment_tag: str) -> Member:
        """Record a team before anything is submitted for it; an existing row is kept as it is."""
        with transaction(self._path) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO class_members (prefix, team, name, deployment_tag, status, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (prefix, team, name, deployment_tag, PLANNED, time.time()),
            )
        return self.member(prefix, team)

    def update_member(self, prefix: str, team: int, **changes: object) -> Member:
        allowed = {"status", "attempts", "error"}
        if set(changes) - allowed:
            raise ValueError(f"cannot update {sorted(set(changes) - allowed)}")
        assignments = ", ".join(f"{col} = ?" for col in changes)
        with transaction(self._path) as conn:
            conn.execute(
                f"UPDATE class_members SET {assignments}, updated_at = ? WHERE prefix = ? AND team = ?",  # noqa: S608
                (*changes.values(), time.time(), prefix, team),
            )
        return self.member(prefix, team)

    def member(self, prefix: str, team: int) -> Member:
        with session(self._path) as conn:
            row = conn.execute(
                "SELECT * FROM class_members WHERE prefix = ? AND team = ?", (prefix, team)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"class {prefix!r} has no team {team}")
        return _member(row)

    def members(self, prefix: str) -> list[Member]:
        with session(self._path) as conn:
            rows = conn.execute(
                "SELECT * FROM class_members WHERE prefix = ? ORDER BY team", (prefix,)
            ).fetchall()
        return [_member(r) for r in rows]

    def forget_member(self, prefix: str, team: int) -> None:
        with transaction(self._path) as conn:
            conn.execute("DELETE FROM class_members WHERE prefix = ? AND team = ?", (prefix, team))

    def forget_class(self, prefix: str) -> None:
        """Remove the class once it has no members left."""
        with transaction(self._path) as conn:
            left = conn.execute("SELECT COUNT(*) FROM class_members WHERE prefix = ?", (prefix,)).fetchone()[
                0
            ]
            if left == 0:
                conn.execute("DELETE FROM classes WHERE prefix = ?", (prefix,))


def _member(row: sqlite3.Row) -> Member:
    return Member(**dict(row))
