"""``create --insecure`` is remembered with the deployment: later commands keep TLS verification off
(with a warning each time) without repeating the flag."""

from __future__ import annotations

import pytest

from deployer.adapters.state.store import DeploymentStore
from deployer.lifecycle.credentials import endpoint_for_record
from deployer.paths import resolve_paths

pytestmark = pytest.mark.im

REMEMBERED = "not verifying the IM's TLS certificate"


def test_insecure_is_recorded_and_used_by_later_commands(cli):
    cli(*cli.create_args("lax", "--no-wait", "--insecure"))
    cli(*cli.create_args("strict", "--no-wait"))
    paths = resolve_paths()
    store = DeploymentStore(paths.state_db)
    assert store.get("lax").insecure is True
    assert store.get("strict").insecure is False
    assert endpoint_for_record(paths, store.get("lax")).insecure is True

    for args in (("status", "lax"), ("outputs", "lax")):
        assert f"lax: {REMEMBERED}" in cli(*args).stderr
    assert REMEMBERED not in cli("status", "strict").stderr
    listed = cli("list")
    assert f"lax: {REMEMBERED}" in listed.stderr and "strict: not" not in listed.stderr

    destroyed = cli("destroy", "lax", "--yes")
    assert f"lax: {REMEMBERED}" in destroyed.stderr
    assert REMEMBERED not in cli("destroy", "strict", "--yes").stderr
