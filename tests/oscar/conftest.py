"""The loopback fake OSCAR and a CLI runner for the `deployer oscar` tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli.app import app
from tests.fixtures.oscar_fake import FakeOscar, oscar_fake  # noqa: F401 - the fixture


class OscarCLI:
    """Runs `deployer oscar ...` against one fake, its password passed through an environment variable."""

    def __init__(self, fake: FakeOscar, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = fake
        self.runner = CliRunner()
        monkeypatch.setenv("OSCAR_PASSWORD", fake.password)

    @property
    def target(self) -> list[str]:
        return ["--endpoint", self.fake.url, "--password-env", "OSCAR_PASSWORD"]

    def __call__(self, *args: str, code: int = 0, target: bool = True) -> Any:
        root = [a for a in args if a == "-vv"]  # a root option: debug logging must not reveal secrets
        argv = [*root, "oscar", *(a for a in args if a != "-vv"), *(self.target if target else [])]
        result = self.runner.invoke(app, argv, catch_exceptions=False)
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def oscar_cli(
    oscar_fake: FakeOscar,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
    deployer_home: Any,
) -> OscarCLI:
    return OscarCLI(oscar_fake, monkeypatch)
