"""The dashboard in a real Chromium against the real local IM: a deployment's page, reveal, scale, destroy,
keyboard access, and what a missing CSRF token or an unreachable IM does."""

from __future__ import annotations

import json

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.lifecycle.deploy import vm_views
from deployer.paths import resolve_paths
from tests.im.conftest import CLI, eventually
from tests.ui.conftest import console_problems, screenshot

WAIT_S = 60


def wn_vms(local_im, im_user, inf_id: str) -> list[str]:
    with IMClient(local_im.url, im_user.entries) as client:
        return [vm.vm_id for vm in vm_views(client, inf_id) if vm.node == "wn_vm"]


def note(browser) -> str:
    return WebDriverWait(browser, WAIT_S).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "p.note"))
    ).text


def test_view_reveal_scale_and_destroy_a_deployment(browser, dashboard, local_im, im_user, deployer_home):
    cli = CLI(local_im, im_user)
    created = cli.json(*cli.create_args("web", "--workers", "1", "--timeout", "60"))
    inf_id = created["infrastructure_id"]

    browser.get(dashboard.url + "/")
    row = browser.find_element(By.LINK_TEXT, "web")
    assert "configured" in browser.find_element(By.CSS_SELECTOR, "tbody tr").text
    screenshot(browser, "deployments")
    row.click()

    assert browser.find_element(By.ID, "state").text == "configured"
    groups = browser.find_element(By.CSS_SELECTOR, "td.vms[data-group=wn]").text
    assert groups.startswith("1 (")
    assert "Contextualization disabled" in browser.find_element(By.CSS_SELECTOR, "pre.log").text
    outputs = {
        row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "code")
        for row in browser.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=outputs-h] tbody tr")
    }
    assert outputs["kubernetes_api_endpoint"].text == "https://10.0.0.1:6443"
    # The secret output is masked in the HTML itself, not only hidden by the page.
    with IMClient(local_im.url, im_user.entries) as client:
        real = client.outputs(inf_id)["front_credentials"]
    assert outputs["front_credentials"].text == "***"
    assert json.dumps(real, sort_keys=True) not in browser.page_source
    screenshot(browser, "deployment")

    # Reveal on click: the value appears in place.
    browser.find_element(By.XPATH, "//button[text()='Reveal front_credentials']").click()
    WebDriverWait(browser, WAIT_S).until(lambda _: outputs["front_credentials"].text != "***")
    assert json.loads(outputs["front_credentials"].text) == real

    # An action without the CSRF token is refused and changes nothing in the IM.
    forged = requests.post(f"{dashboard.url}/deployments/web/scale", data={"group": "wn", "count": "3"}, timeout=30)
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert len(wn_vms(local_im, im_user, inf_id)) == 1

    # Scale wn to 2 through the form: the IM gets the new VM.
    count = browser.find_element(By.ID, "count-wn")
    count.clear()
    count.send_keys("2")
    browser.find_element(By.XPATH, "//button[text()='Scale wn']").click()
    assert "group wn adds VM(s)" in note(browser)
    assert len(wn_vms(local_im, im_user, inf_id)) == 2
    screenshot(browser, "scaled")

    # Destroy needs the typed name: the button stays disabled for a wrong one.
    confirm = browser.find_element(By.ID, "confirm")
    destroy = browser.find_element(By.ID, "destroy-button")
    confirm.send_keys("wbe")
    assert not destroy.is_enabled()
    confirm.clear()
    confirm.send_keys("web")
    assert destroy.is_enabled()
    screenshot(browser, "destroy-confirm")
    destroy.click()
    assert note(browser) == "web: destroyed"
    assert browser.current_url.split("?")[0] == dashboard.url + "/"
    assert DeploymentStore(resolve_paths().state_db).all() == []
    with IMClient(local_im.url, im_user.entries) as client:
        eventually(client.list_ids, [])
    assert console_problems(browser) == []
