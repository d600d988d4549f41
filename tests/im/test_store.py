"""The deployments table: records, updates, no secrets, and two processes writing at once."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.errors import NotFoundError, UserError
from deployer.logs import register_secret


def record(name: str, **changes: object) -> DeploymentRecord:
    base = DeploymentRecord(
        name=name,
        cloud="local",
        im_url="http://127.0.0.1:1",
        infrastructure_id=None,
        deployment_tag=f"dpl-{name}",
        spec_hash="abc",
        tosca_redacted="tosca: 1",
        status="submitting",
    )
    return DeploymentRecord(**{**base.__dict__, **changes})


def test_add_update_get_delete(tmp_path):
    store = DeploymentStore(tmp_path / "state.db")
    added = store.add(record("one"), now=100.0)
    assert added.created_at == added.updated_at == 100.0
    with pytest.raises(UserError, match="already exists"):
        store.add(record("one", deployment_tag="dpl-other"))
    updated = store.update("one", infrastructure_id="inf-1", status="configured", now=200.0)
    assert (updated.infrastructure_id, updated.status, updated.created_at, updated.updated_at) == (
        "inf-1",
        "configured",
        100.0,
        200.0,
    )
    assert store.get("one") == updated
    assert [r.name for r in store.all()] == ["one"]
    with pytest.raises(ValueError, match="cannot update"):
        store.update("one", cloud="elsewhere")
    assert store.delete("one") is True
    assert store.delete("one") is False
    with pytest.raises(NotFoundError, match="no deployment named 'one'"):
        store.get("one")
    with pytest.raises(NotFoundError):
        store.update("one", status="x")
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600


def test_registered_secrets_never_reach_the_file(tmp_path):
    secret = "very-secret-admin-token-123"
    register_secret(secret)
    store = DeploymentStore(tmp_path / "state.db")
    store.add(record("leaky", tosca_redacted=f"admin_token: {secret}"))
    store.update("leaky", tosca_redacted=f"again: {secret}")
    assert secret not in store.get("leaky").tosca_redacted
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("state.db"))
    assert secret.encode() not in raw


def _writer(db: str, prefix: str, count: int) -> None:
    store = DeploymentStore(Path(db))
    for i in range(count):
        name = f"{prefix}-{i}"
        store.add(record(name, deployment_tag=f"dpl-{name}"))
        store.update(name, status="configured", infrastructure_id=f"inf-{name}")


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    db = str(tmp_path / "state.db")
    DeploymentStore(tmp_path / "state.db")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(db, prefix, 40)) for prefix in ("a", "b")]
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    rows = DeploymentStore(tmp_path / "state.db").all()
    assert len(rows) == 80
    assert {r.status for r in rows} == {"configured"}
    assert all(r.infrastructure_id == f"inf-{r.name}" for r in rows)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert os.stat(db).st_mode & 0o777 == 0o600
