"""The dashboard's other pages in a real Chromium: elasticity (from the daemon's recorded rounds), simulator
results, the absent classes page, an unreachable IM and the edge form's errors; headers and CSP."""

from __future__ import annotations

import json
import re
import socket

import requests
from selenium.webdriver.common.by import By
from typer.testing import CliRunner

from deployer.adapters.im.local_server import free_port
from deployer.adapters.state.edge import EdgeHostStore
from deployer.adapters.state.history import ElasticityHistory, RoundSample, decisions_of
from deployer.adapters.state.nodes import NodeStateStore
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.cli.app import app
from deployer.core.elasticity.model import ElasticityState, NodePhase, NodeRecord, Plan, ScaleDown, ScaleUp
from deployer.daemon.metrics import DaemonMetrics, MetricsServer
from deployer.paths import resolve_paths
from deployer.ui.app import CSP
from tests.ui.conftest import console_problems, screenshot, start_dashboard, stop_dashboard, submit

T0 = 1_760_000_000.0
SIM_SPEC = "name: simui\nworker_groups:\n  - {name: wn, cpus: 4, memory: 8 GiB, max: 3, cost_per_hour: 0.5}\n"


def add_record(name: str, im_url: str, *, cloud: str = "local", auth_file: str | None = None) -> None:
    DeploymentStore(resolve_paths().state_db).add(
        DeploymentRecord(
            name=name,
            cloud=cloud,
            im_url=im_url,
            infrastructure_id="0a1b2c",
            deployment_tag=f"dpl-{name}",
            spec_hash="x",
            tosca_redacted="tosca_definitions_version: tosca_simple_yaml_1_0\n",
            status="configured",
            auth_file=auth_file,
        )
    )


def test_elasticity_page_draws_the_recorded_rounds_and_lists_decisions(browser, dashboard):
    add_record("elastic", "http://127.0.0.1:9")  # this page never asks the IM
    paths = resolve_paths()
    NodeStateStore(paths.state_db, "elastic").save(
        ElasticityState(
            records={
                "wn-0": NodeRecord("wn-0", "wn", NodePhase.USED, T0 + 60, vm_id="1"),
                "wn-1": NodeRecord("wn-1", "wn", NodePhase.POWERING_ON, T0 + 120, vm_id="2"),
                "pi-1": NodeRecord("pi-1", "edge", NodePhase.OFF, T0),
            }
        )
    )
    history = ElasticityHistory(paths.state_db, "elastic")
    up = Plan(scale_ups=(ScaleUp("wn", 2, "3 pending pods need 2 nodes of wn (cheapest that fits)"),))
    # A reason carries text from the cluster (pod and node names): it is shown as text, never as markup.
    down = Plan(scale_downs=(ScaleDown("edge", ("pi-1",), "idle for 300 s (break-even) <img src=x>"),))
    history.record_round(RoundSample(T0, 3, {"edge": {"idle": 1}}), decisions_of(up, T0))
    history.record_round(
        RoundSample(T0 + 60, 1, {"wn": {"used": 1, "powering_on": 1}, "edge": {"idle": 1}}), []
    )
    history.record_round(
        RoundSample(T0 + 120, 0, {"wn": {"used": 2}, "edge": {"off": 1}}), decisions_of(down, T0 + 120)
    )

    browser.get(f"{dashboard.url}/deployments/elastic/elasticity")
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "figcaption .legend")]
    assert legend == ["pending pods (now 0)", "edge nodes (now 0)", "wn nodes (now 2)"]
    lines = browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
    # Step lines: one corner per change. pending 3 -> 1 -> 0, edge 1 -> 1 -> 0, wn 0 -> 2 -> 2.
    assert [len(line.get_attribute("points").split()) for line in lines] == [5, 4, 4]
    decisions = [
        row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=decisions-h] tbody tr")
    ]
    assert "scale down" in decisions[0] and "idle for 300 s (break-even) <img src=x>" in decisions[0]
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert "scale up" in decisions[1] and "3 pending pods need 2 nodes of wn" in decisions[1]
    nodes = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=nodes-h] tbody").text
    assert "wn-1 wn powering on" in nodes and "pi-1 edge off" in nodes
    screenshot(browser, "elasticity")
    assert console_problems(browser) == []


def test_simulator_page_shows_the_comparison_and_its_plots(browser, dashboard):
    browser.get(f"{dashboard.url}/simulator")
    sections = browser.find_elements(By.CSS_SELECTOR, "main section")
    titles = [s.find_element(By.TAG_NAME, "h2").text for s in sections]
    traces = ["batch-htc", "classroom-burst", "edge-mask-detection", "mixed-multicloud"]
    assert [t for t in titles if t in traces] == traces
    assert "CLUES calibration" in titles
    first = sections[titles.index("batch-htc")]
    header = [th.text for th in first.find_elements(By.CSS_SELECTOR, "thead th")]
    assert header[:3] == ["policy", "completed", "node-hours"]
    policies = [
        row.find_element(By.TAG_NAME, "th").text for row in first.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert policies == ["deployer (default: both)", "clues", "static-max", "static-min"]
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('img.plot')].map(i => i.complete && i.naturalWidth > 0)"
    )
    assert loaded == [True] * 4
    screenshot(browser, "simulator")
    # Only the plots folder's PNGs are served.
    assert requests.get(f"{dashboard.url}/simulator/plots/..%2Fresults.md", timeout=10).status_code == 404
    assert console_problems(browser) == []


def test_classes_page_without_classes(browser, dashboard):
    browser.get(dashboard.url + "/")
    nav = browser.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Classes" not in nav and "Deployments" in nav
    browser.get(dashboard.url + "/classes")
    assert "No classes on this machine." in browser.find_element(By.TAG_NAME, "main").text


def test_classes_page_lists_every_team_with_its_clusters_state(browser, dashboard):
    from deployer.adapters.state.classes import ClassRecord, ClassStore

    paths = resolve_paths()
    classes = ClassStore(paths.state_db)
    classes.save_class(ClassRecord("lab", 2))
    classes.plan_member("lab", 1, "lab-01", "dpl-team-1")
    classes.update_member("lab", 1, status="ready")
    classes.plan_member("lab", 2, "lab-02", "dpl-team-2")
    classes.update_member("lab", 2, status="failed", error="the IM refused <b>it</b>")
    add_record("lab-01", "http://127.0.0.1:9")
    try:
        browser.get(dashboard.url + "/")
        assert "Classes" in browser.find_element(By.CSS_SELECTOR, "header nav").text
        browser.get(dashboard.url + "/classes")
        rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "main tbody tr")]
        assert rows == ["lab 1 lab-01 ready configured", "lab 2 lab-02 failed - the IM refused <b>it</b>"]
        screenshot(browser, "classes")
    finally:
        classes.forget_class("lab")
        for team in (1, 2):
            classes.forget_member("lab", team)
        DeploymentStore(paths.state_db).delete("lab-01")


def test_unreachable_im_is_a_notice_and_edge_errors_come_from_the_edge_use_case(browser, dashboard, im_user):
    dead = f"http://127.0.0.1:{free_port()}"
    add_record("lost", dead, auth_file=str(im_user.auth_file))
    browser.get(f"{dashboard.url}/deployments/lost")
    problem = browser.find_element(By.CSS_SELECTOR, "p.note-error").text
    assert problem.startswith("IM: ") and dead in problem and "did not answer" in problem
    assert browser.find_element(By.ID, "state").text == "configured"  # the last state recorded

    # Adding a board to a simulated cluster: the edge use case refuses before any SSH connection.
    browser.find_element(By.ID, "edge-host").send_keys("192.0.2.10")
    submit(browser, "Add edge host")
    error = browser.find_element(By.ID, "flash").text
    assert "runs on the local Dummy cloud" in error and "pass --front" in error
    browser.find_element(By.ID, "edge-host").send_keys("192.0.2.10")
    group = browser.find_element(By.ID, "edge-group")
    group.clear()
    group.send_keys("Bad_Group")
    submit(browser, "Add edge host")
    assert "--group 'Bad_Group'" in browser.find_element(By.ID, "flash").text
    assert EdgeHostStore(resolve_paths().state_db).list("lost") == []
    screenshot(browser, "unreachable-im")
    assert browser.find_element(By.ID, "flash").get_attribute("role") == "alert"


def test_pages_carry_a_strict_csp_and_no_inline_code(dashboard):
    add_record("headers", "http://127.0.0.1:9")
    for path in ("/", "/simulator", "/classes", "/deployments/headers/elasticity", "/deployments/nope"):
        response = requests.get(dashboard.url + path, timeout=30)
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
        assert " style=" not in response.text and not re.search(r'(src|href)="(https?:)?//', response.text)
    assert requests.get(dashboard.url + "/deployments/nope", timeout=30).status_code == 404
    # A page from another origin cannot act, even with the token.
    token = re.search(r'name="csrf-token" content="([^"]+)"', requests.get(dashboard.url, timeout=30).text)[1]
    cross = requests.post(
        f"{dashboard.url}/deployments/headers/destroy",
        data={"csrf": token, "confirm": "headers"},
        headers={"Origin": "http://evil.example"},
        timeout=30,
    )
    assert cross.status_code == 403
    # The typed name is checked by the server too, not only by the page's script.
    mistyped = requests.post(
        f"{dashboard.url}/deployments/headers/destroy", data={"csrf": token, "confirm": "header"}, timeout=30
    )
    assert (
        mistyped.status_code == 200 and "type the deployment&#39;s name (headers) to confirm" in mistyped.text
    )
    assert DeploymentStore(resolve_paths().state_db).find("headers") is not None
    # DNS rebinding: a loopback dashboard answers loopback host names only.
    assert requests.get(dashboard.url, headers={"Host": "evil.example"}, timeout=30).status_code == 400


def test_elasticity_page_reads_a_running_daemons_metrics(browser, deployer_home):
    add_record("elastic", "http://127.0.0.1:9")
    add_record("silent", "http://127.0.0.1:9")
    metrics = DaemonMetrics()
    metrics.set_gauge("deployer_pending_pods", 4)
    metrics.replace_gauge(
        "deployer_nodes",
        {(("group", "wn"), ("phase", "powering_on")): 2, (("group", "wn"), ("phase", "used")): 1},
    )
    metrics.inc("deployer_decisions_total", kind="scale_up", group="wn")
    metrics.inc("deployer_decisions_total", kind="scale_up", group="gpu")
    metrics.inc("deployer_reconciles_total", 7)
    server = MetricsServer(metrics, 0).start()
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    dashboard = start_dashboard(
        "--daemon-metrics",
        f"elastic=http://127.0.0.1:{server.port}/metrics",
        "--daemon-metrics",
        f"silent={dead}",
    )
    try:
        browser.get(f"{dashboard.url}/deployments/elastic/elasticity")
        live = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=live-h]").text
        assert browser.find_element(By.ID, "live-pending").text == "4"
        assert "Rounds: 7, failed: 0" in live and "scale up 2" in live
        assert browser.find_element(By.CSS_SELECTOR, "#live-nodes tbody").text == "wn powering on: 2, used: 1"
        screenshot(browser, "elasticity-live")
        browser.get(f"{dashboard.url}/deployments/silent/elasticity")
        problem = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=live-h] [role=alert]").text
        assert dead in problem and "no answer" in problem
    finally:
        stop_dashboard(dashboard)
        server.stop()


def test_a_silent_im_costs_the_page_one_bounded_wait(browser, deployer_home, im_user):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        add_record("stuck", url, auth_file=str(im_user.auth_file))
        dashboard = start_dashboard("--im-timeout", "1")
        try:
            browser.get(f"{dashboard.url}/deployments/stuck")
            problem = browser.find_element(By.CSS_SELECTOR, "p.note-error").text
        finally:
            stop_dashboard(dashboard)
    assert url in problem and "did not answer" in problem and "timed out" in problem


def test_simulator_page_shows_a_simulate_run(browser, deployer_home, tmp_path):
    spec, trace, run = tmp_path / "spec.yaml", tmp_path / "trace.csv", tmp_path / "run.json"
    spec.write_text(SIM_SPEC)
    trace.write_text("submit_s,cpu,memory_mib,duration_s,arch\n0,1,512,120,\n5,2,1024,300,\n20,1,512,60,\n")
    simulated = CliRunner().invoke(
        app,
        [
            "simulate",
            "--spec",
            str(spec),
            "--trace",
            str(trace),
            "--compare",
            "--json",
            "--plot",
            str(tmp_path / "run.png"),
        ],
        catch_exceptions=False,
    )
    assert simulated.exit_code == 0, simulated.output
    run.write_text(simulated.stdout)
    dashboard = start_dashboard("--results", str(run))
    try:
        browser.get(f"{dashboard.url}/simulator")
        assert browser.find_element(By.CSS_SELECTOR, "main h2").text == "run"
        policies = [
            row.find_element(By.TAG_NAME, "th").text
            for row in browser.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        assert policies == [entry["policy"] for entry in json.loads(simulated.stdout)]
        assert browser.execute_script(
            "const i = document.querySelector('img.plot'); return i.complete && i.naturalWidth > 0"
        )
        run.write_text("{not json")
        browser.refresh()
        assert (
            "run: not the JSON of `deployer simulate --json`"
            in browser.find_element(By.CSS_SELECTOR, "p.note-error").text
        )
    finally:
        stop_dashboard(dashboard)
