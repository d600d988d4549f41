"""Test-wide fixtures. Each real service the tests need lives in its own module under tests/fixtures/."""

from __future__ import annotations

import pytest

from tests.fixtures.im_server import *  # noqa: F403
from tests.fixtures.kube_api import *  # noqa: F403
from tests.fixtures.netns import *  # noqa: F403


@pytest.fixture
def deployer_home(tmp_path, monkeypatch):
    """A private DEPLOYER_HOME for one test: nothing leaks into the user's real config or state."""
    home = tmp_path / "deployer-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("DEPLOYER_HOME", str(home))
    return home
