"""SQLite persistence of the daemon's node records: round trips, atomic replace, per-cluster isolation."""

from __future__ import annotations

import os
import stat

from deployer.adapters.state.nodes import NodeStateStore
from deployer.core.elasticity.model import ElasticityState, NodePhase, NodeRecord


def _state() -> ElasticityState:
    return ElasticityState(
        records={
            "wn-3": NodeRecord("wn-3", "wn", NodePhase.POWERING_ON, since=100.0, attempts=1, vm_id="3"),
            "edge-a": NodeRecord(
                "edge-a", "edge", NodePhase.IDLE, since=50.0, idle_since=55.5, underutilized_since=None
            ),
        },
        group_backoff_until={"wn": 400.0},
        last_scale_up={"wn": 100.0},
        last_scale_down={"edge": 20.0},
    )


def test_state_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "state.db"
    first = NodeStateStore(path, "c1")
    first.save(_state())
    first.close()
    again = NodeStateStore(path, "c1")
    assert again.load() == _state()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again.close()


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
