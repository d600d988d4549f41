"""Helpers for driving the real ``deployer`` CLI against the session's real IM."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli.app import app


class CLI:
    def __init__(self, local_im: Any, im_user: Any) -> None:
        self.runner = CliRunner()
        self.url = local_im.url
        self.auth_file = im_user.auth_file

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout:{result.stdout}\nstderr:{result.stderr}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def create_args(self, name: str, *extra: str) -> list[str]:
        return [
            "create",
            "--cloud",
            "local",
            "--name",
            name,
            "--im-url",
            self.url,
            "--auth-file",
            str(self.auth_file),
            *extra,
        ]


@pytest.fixture
def cli(local_im: Any, im_user: Any, deployer_home: Any) -> Callable[..., Any]:
    return CLI(local_im, im_user)


def eventually(probe: Callable[[], Any], expected: Any, *, within: float = 15.0) -> None:
    """Assert ``probe() == expected`` within a deadline.

    The IM persists a destroy through a retried save, so under load its listing can show a destroyed
    infrastructure for a moment; tests wait for that to settle instead of asserting on the first read.
    """
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value == expected:
            return
        assert time.monotonic() < deadline, f"still {value!r}, expected {expected!r}"
        time.sleep(0.3)
