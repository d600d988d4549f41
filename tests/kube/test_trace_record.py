"""``deployer trace record`` against the loopback fake API: paging, what goes in the trace, an unreachable API."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone

from typer.testing import CliRunner

from deployer.cli.app import app
from deployer.sim.trace import load_trace
from tests.daemon.conftest import write_kubeconfig
from tests.fixtures.kube_api import FakeKubeAPI

SPEC = """\
name: rec
worker_groups:
  - {name: wn, cpus: 4, memory: 8 GiB, max: 3}
"""


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_times(api: FakeKubeAPI, name: str, created_ago: float, ran: float, finished: bool) -> None:
    """The pod was created ``created_ago`` s ago, started 5 s later and ran ``ran`` s (ending if finished)."""
    now = datetime.now(timezone.utc)
    created = now - timedelta(seconds=created_ago)
    started = created + timedelta(seconds=5)

    def mutate(pod):
        pod["metadata"]["creationTimestamp"] = _stamp(created)
        pod["status"]["startTime"] = _stamp(started)
        if finished:
            pod["status"]["phase"] = "Succeeded"
            end = _stamp(started + timedelta(seconds=ran))
            state = {"terminated": {"exitCode": 0, "startedAt": _stamp(started), "finishedAt": end}}
            pod["status"]["containerStatuses"] = [
                {
                    "name": "main",
                    "ready": False,
                    "restartCount": 0,
                    "image": "x",
                    "imageID": "",
                    "state": state,
                }
            ]

    api.update_pod("default", name, mutate)


def _record(*args: str):
    return CliRunner().invoke(app, ["trace", "record", "--cluster", "rec", *args], catch_exceptions=False)


def test_records_finished_and_running_pods_page_by_page_and_the_trace_simulates(
    kube_api: FakeKubeAPI, tmp_path, deployer_home
):
    for i in range(4):  # finished Job pods of one app: one workload class
        kube_api.add_pod(
            f"render-{i}",
            cpu="1",
            memory="512Mi",
            node="n1",
            owner_kind="Job",
            labels={"job-name": f"render-2839{i:04d}"},
        )
        _set_times(kube_api, f"render-{i}", created_ago=3000 - 100 * i, ran=120 + i, finished=True)
    kube_api.add_pod(
        "web-abcde", cpu="500m", memory="256Mi", node="n1", node_selector={"kubernetes.io/arch": "arm64"}
    )
    _set_times(kube_api, "web-abcde", created_ago=1000, ran=0, finished=False)
    kube_api.add_pod("waiting", cpu="1", memory="512Mi", owner_kind="Job")  # never started
    kube_api.add_pod("ds-n1", node="n1", owner_kind="DaemonSet")
    kube_api.add_pod("old", cpu="1", memory="512Mi", node="n1", owner_kind="Job")
    _set_times(kube_api, "old", created_ago=10 * 3600, ran=60, finished=True)
    out = tmp_path / "trace.csv"
    kubeconfig = write_kubeconfig(tmp_path, kube_api.url)

    result = _record(
        "--kubeconfig", str(kubeconfig), "--since", "2h", "-o", str(out), "--page-size", "2", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pods"] == 5 and summary["still_running"] == 1
    assert (
        summary["skipped_not_started"],
        summary["skipped_per_node"],
        summary["skipped_before_window"],
    ) == (1, 1, 1)
    lists = kube_api.requests_to("GET", "/api/v1/pods")
    assert len(lists) == 4  # 8 pods, 2 per page
    assert [r.query.get("limit") for r in lists] == ["2"] * 4
    assert "continue" not in lists[0].query and all(r.query.get("continue") for r in lists[1:])

    jobs = load_trace(out)
    renders = [j for j in jobs if j.kind == "job"]
    assert [j.submit_s for j in renders] == [0, 100, 200, 300]
    assert [j.duration_s for j in renders] == [120, 121, 122, 123]
    assert {j.workload for j in renders} == {"default/Job/render/1000m/512Mi/0gpu"}
    (web,) = [j for j in jobs if j.kind == "service"]
    assert (web.cpu_m, web.memory_mib, web.arch, web.submit_s) == (500, 256, "arm64", 2000)
    assert 990 <= web.duration_s <= 1100  # still running: its run so far (the test's own seconds included)

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    ran = CliRunner().invoke(app, ["simulate", "--spec", str(spec), "--trace", str(out), "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["jobs_completed"] == 4  # the arm64 pod has no arm64 group to run on


def test_an_unreachable_api_is_one_line_and_leaves_no_file(tmp_path, deployer_home):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "trace.csv"
    kubeconfig = write_kubeconfig(tmp_path, f"http://127.0.0.1:{port}")
    result = _record("--kubeconfig", str(kubeconfig), "-o", str(out))
    assert result.exit_code == 3  # a remote failure (transient: try again when the cluster is up)
    assert f"Kubernetes API at http://127.0.0.1:{port} unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*trace.csv*"))


def test_a_bad_since_names_the_flag(tmp_path, deployer_home):
    result = _record("--since", "yesterday", "-o", str(tmp_path / "t.csv"))
    assert result.exit_code == 1
    assert "--since yesterday: expected a positive duration" in result.stderr
