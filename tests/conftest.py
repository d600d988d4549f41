"""Test-wide fixtures. Each real service the tests need lives in its own module under tests/fixtures/."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from tests.fixtures.background import stop_background
from tests.fixtures.fault_lab import *  # noqa: F403
from tests.fixtures.im_server import *  # noqa: F403
from tests.fixtures.kube_api import *  # noqa: F403
from tests.fixtures.netns import *  # noqa: F403

# CI replays the same examples every run (a red CI must be reproducible); local runs explore new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture
def deployer_home(tmp_path, monkeypatch):
    """A private DEPLOYER_HOME for one test: nothing leaks into the user's real config or state, and no
    background process (a local deployment's sandbox cluster and daemon, the embedded IM) outlives it."""
    home = tmp_path / "deployer-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("DEPLOYER_HOME", str(home))
    yield home
    stop_background(home)
