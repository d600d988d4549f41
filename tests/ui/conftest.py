"""Fixtures of the dashboard tests: the real ``deployer ui`` process and a real headless Chromium.

The dashboard runs as the CLI runs it (a subprocess of ``deployer ui``, this checkout on PYTHONPATH, the
test's DEPLOYER_HOME). Chromium is Debian's, driven by its chromedriver through Selenium; it only ever
loads loopback pages (the suite runs in a loopback-only network namespace). Screenshots go to
tests/artifacts/ui/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from deployer.adapters.im.local_server import free_port
from tests.fixtures.background import stop_background

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
START_TIMEOUT_S = 30.0


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[bytes]


def start_dashboard(*args: str, env: dict[str, str] | None = None) -> Dashboard:
    """``deployer ui --port P ARGS`` in the background; returns once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "deployer", "ui", "--port", str(port), *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            requests.get(url + "/static/style.css", timeout=2)
            return Dashboard(url, process)
        except requests.ConnectionError:
            if process.poll() is not None:
                stderr = process.stderr.read().decode() if process.stderr else ""
                raise AssertionError(f"deployer ui exited {process.returncode}: {stderr}") from None
            assert time.monotonic() < deadline, "deployer ui did not answer in time"
            time.sleep(0.2)


def stop_dashboard(dashboard: Dashboard) -> None:
    dashboard.process.terminate()
    try:
        dashboard.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        dashboard.process.kill()
        dashboard.process.wait(timeout=10)
    if dashboard.process.stderr is not None:
        dashboard.process.stderr.close()


@pytest.fixture(scope="module")
def module_dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, Path]]:
    """One dashboard per test module (starting one costs seconds), on the module's own DEPLOYER_HOME."""
    home = tmp_path_factory.mktemp("ui-home")
    home.chmod(0o700)
    running = start_dashboard(env={"DEPLOYER_HOME": str(home)})
    try:
        yield running, home
    finally:
        stop_dashboard(running)
        stop_background(home)


@pytest.fixture
def dashboard(module_dashboard: tuple[Dashboard, Path], monkeypatch: pytest.MonkeyPatch) -> Dashboard:
    """The module's dashboard; the test's own deployer calls use the same DEPLOYER_HOME (so names given
    to deployments must differ between the tests of a module)."""
    running, home = module_dashboard
    monkeypatch.setenv("DEPLOYER_HOME", str(home))
    return running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install 'deployer[test]' (selenium)")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(
            "Debian's chromium and chromium-driver are needed (apt-get install chromium chromium-driver)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # runs as root in CI containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-first-run",
        "--disable-background-networking",  # no update checks, no safe-browsing lists: loopback only
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def console_problems(driver: Any) -> list[str]:
    """Console errors since the last call (CSP violations show up here)."""
    return [
        entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
    ]


def submit(driver: Any, button_text: str, timeout: float = 60.0) -> None:
    """Click a form's button and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    button = driver.find_element(By.XPATH, f"//button[text()={button_text!r}]")
    button.click()
    WebDriverWait(driver, timeout).until(expected_conditions.staleness_of(button))
