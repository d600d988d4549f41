"""SQLite persistence of the daemon's node records: round trips, atomic replace, per-cluster isolation."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat

from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.model import ElasticityState, NodePhase, NodeRecord


def _state() -> ElasticityState:
    return ElasticityState(
        records={
            "wn-3": NodeRecord("wn-3", "wn", NodePhase.POWERING_ON, since=100.0, attempts=1, vm_id="3"),
            "edge-a": NodeRecord(
                "edge-a", "edge", NodePhase.IDLE, since=50.0, idle_since=55.5, underutilized_since=60.0
            ),
        },
        group_backoff_until={"wn": 400.0},
        last_scale_up={"wn": 100.0},
        last_scale_down={"edge": 20.0},
        group_failures={"wn": 2},
        scale_up_rounds={"wn": (40.0, 100.0), "edge": (10.5,)},
    )


def test_the_round_trip_fixture_sets_every_field() -> None:
    """A field added to the model but not to the store would silently reset on every daemon round."""
    state = _state()
    for field in dataclasses.fields(NodeRecord):
        values = [getattr(record, field.name) for record in state.records.values()]
        assert any(v not in (None, 0, field.default) for v in values), (
            f"no record sets NodeRecord.{field.name}"
        )
    for field in dataclasses.fields(ElasticityState):
        assert getattr(state, field.name), f"the fixture leaves ElasticityState.{field.name} empty"


def test_state_survives_a_restart_and_is_private(tmp_path) -> None:
    path = tmp_path / "state.db"
    first = NodeStateStore(path, "c1")
    first.save(_state())
    again = NodeStateStore(path, "c1")
    assert again.load() == _state()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_database_from_before_the_scale_up_rounds_column_loads_and_saves(tmp_path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:  # the groups table as it was before the column existed
        conn.execute(
            "CREATE TABLE elasticity_groups (cluster TEXT NOT NULL, node_group TEXT NOT NULL, "
            "backoff_until REAL, last_scale_up REAL, last_scale_down REAL, "
            "failures INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cluster, node_group))"
        )
        conn.execute("INSERT INTO elasticity_groups VALUES ('c1', 'wn', NULL, 100.0, NULL, 0)")
    conn.close()
    store = NodeStateStore(path, "c1")
    assert store.load() == ElasticityState(last_scale_up={"wn": 100.0})
    store.save(_state())
    assert store.load() == _state()


def test_save_replaces_records_that_are_gone(tmp_path) -> None:
    store = NodeStateStore(tmp_path / "state.db", "c1")
    store.save(_state())
    state = _state()
    records = dict(state.records)
    del records["wn-3"]
    store.save(ElasticityState(records=records))
    loaded = store.load()
    assert set(loaded.records) == {"edge-a"}
    assert loaded.group_backoff_until == {} and loaded.last_scale_up == {}


def test_put_and_remove_single_records(tmp_path) -> None:
    store = NodeStateStore(tmp_path / "state.db", "c1")
    store.put(NodeRecord("wn-7", "wn", NodePhase.DRAINING, since=9.0))
    assert store.load().records["wn-7"].phase is NodePhase.DRAINING
    store.remove("wn-7")
    assert store.load().records == {}


def test_clusters_do_not_see_each_other(tmp_path) -> None:
    path = tmp_path / "state.db"
    one, two = NodeStateStore(path, "one"), NodeStateStore(path, "two")
    one.save(_state())
    assert two.load() == ElasticityState()
    two.save(ElasticityState(records={"x-1": NodeRecord("x-1", "x", NodePhase.USED, since=1.0)}))
    assert one.load() == _state()
