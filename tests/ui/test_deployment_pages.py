"""The dashboard in a real Chromium against the real local IM: a deployment's page, reveal, scale, destroy,
keyboard access, and what a missing CSRF token or an unreachable IM does."""

from __future__ import annotations

import json

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from deployer.adapters.im.client import IMClient
from deployer.adapters.state.store import DeploymentStore
from deployer.lifecycle.deploy import vm_views
from deployer.paths import resolve_paths
from tests.im.conftest import CLI, eventually
from tests.ui.conftest import console_problems, screenshot, submit

WAIT_S = 60


def wn_vms(local_im, im_user, inf_id: str) -> list[str]:
    with IMClient(local_im.url, im_user.entries) as client:
        return [vm.vm_id for vm in vm_views(client, inf_id) if vm.node == "wn_vm"]


def tab_through(browser, limit: int = 80) -> list[str]:
    """Press Tab from the top of the page; the id (or text) of each element that gets the focus."""
    browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    seen: list[str] = []
    for _ in range(limit):
        focused = browser.switch_to.active_element
        stop = focused.get_attribute("id") or focused.text.strip()
        if seen and stop == seen[0]:
            break
        seen.append(stop)
        focused.send_keys(Keys.TAB)
    return seen


def focus_by_tab(browser, target, limit: int = 80) -> None:
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(limit):
        if browser.switch_to.active_element == target:
            return
        browser.switch_to.active_element.send_keys(Keys.TAB)
    raise AssertionError(f"Tab never reached {target.text!r}")


def test_view_reveal_scale_and_destroy_a_deployment(browser, dashboard, local_im, im_user):
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

    # Every field has a label, and the keyboard reaches every action, in page order.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => e.labels.length === 0).map(e => e.name)"
    )
    assert unlabelled == []
    reached = tab_through(browser)
    actions = ["count-wn", "Scale wn", "Reveal front_credentials", "edge-host", "Add edge host", "confirm"]
    assert [stop for stop in reached if stop in actions] == actions

    # Reveal from the keyboard: the value appears in place.
    reveal = browser.find_element(By.XPATH, "//button[text()='Reveal front_credentials']")
    focus_by_tab(browser, reveal)
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    WebDriverWait(browser, WAIT_S).until(lambda _: outputs["front_credentials"].text != "***")
    assert json.loads(outputs["front_credentials"].text) == real

    # An action without the CSRF token is refused and changes nothing in the IM.
    forged = requests.post(
        f"{dashboard.url}/deployments/web/scale", data={"group": "wn", "count": "3"}, timeout=30
    )
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert len(wn_vms(local_im, im_user, inf_id)) == 1

    # Scale wn to 2 through the form: the IM gets the new VM.
    count = browser.find_element(By.ID, "count-wn")
    count.clear()
    count.send_keys("2")
    submit(browser, "Scale wn")
    assert "group wn adds VM(s)" in browser.find_element(By.ID, "flash").text
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
    submit(browser, "Destroy web")
    assert browser.find_element(By.ID, "flash").text.startswith("web: destroyed ")
    assert browser.current_url.split("?")[0] == dashboard.url + "/"
    assert DeploymentStore(resolve_paths().state_db).find("web") is None
    with IMClient(local_im.url, im_user.entries) as client:
        eventually(client.list_ids, [])
    assert console_problems(browser) == []
