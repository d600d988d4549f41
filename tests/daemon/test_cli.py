"""`deployer daemon ...` end to end: the CLI against the fake Kubernetes API (through a kubeconfig file) and
the real local IM (standalone flags: --spec, --im-url, --auth-file, --infra-id)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from deployer.adapters.kube import LeaderElector
from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.cli.app import app
from deployer.daemon.lock import run_lock
from deployer.lifecycle.prepare import render_prepared
from deployer.paths import resolve_paths
from tests.daemon.conftest import IMCluster, pending_count, wait_for, worker_vms, write_kubeconfig

pytestmark = pytest.mark.im


@pytest.fixture
def daemon_args(deployer_home, tmp_path, kube_api, local_im, im_user, im_cluster: IMCluster) -> list[str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "elasticity": {"idle_time": 60},
                "worker_groups": [{"name": "wn", "min": 0, "max": 4, "initial": 0}],  # as in im_cluster
            }
        )
    )
    return [
        "--spec", str(spec),
        "--im-url", local_im.url,
        "--auth-file", str(im_user.auth_file),
        "--infra-id", im_cluster.infra_id,
        "--kubeconfig", str(write_kubeconfig(tmp_path, kube_api.url)),
    ]  # fmt: skip


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    # An unexpected exception (not a deployer error) would also exit 1: show it rather than hide it.
    detail = result.stderr + (repr(result.exception) if result.exit_code and result.exception else "")
    return result.exit_code, result.stdout, detail


def test_once_scales_up_and_a_second_run_adds_nothing(kube_api, cluster, im_cluster, daemon_args) -> None:
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    code, out, err = _invoke(
        "-v", "--json-logs", "daemon", "run", "--cluster", "c1", "--once", "--json", *daemon_args
    )
    assert code == 0, err
    report = json.loads(out)
    decisions = [json.loads(line) for line in err.splitlines() if '"decision"' in line]
    assert [(d["decision"], d["group"], d["count"]) for d in decisions] == [("scale_up", "wn", 1)]
    assert [(u["group"], u["count"], u["pods"]) for u in report["scale_ups"]] == [
        ("wn", 1, ["default/work-0"])
    ]
    vms = worker_vms(im_cluster)
    assert len(vms) == 1
    code, out, err = _invoke("daemon", "run", "--cluster", "c1", "--once", "--json", *daemon_args)
    assert code == 0, err
    assert json.loads(out)["scale_ups"] == []
    assert [n["name"] for n in json.loads(out)["nodes"]] == [f"wn-{vms[0]}"]
    assert worker_vms(im_cluster) == vms


def test_dry_run_prints_the_plan_and_changes_nothing(kube_api, cluster, im_cluster, daemon_args) -> None:
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    code, out, err = _invoke("daemon", "run", "--cluster", "c1", "--dry-run", "--json", *daemon_args)
    assert code == 0, err
    assert [u["count"] for u in json.loads(out)["scale_ups"]] == [1]
    assert worker_vms(im_cluster) == []
    code, out, _ = _invoke("daemon", "run", "--cluster", "c1", "--dry-run", *daemon_args)
    assert code == 0 and "scale-up" in out and "wn" in out


def test_explain_says_why_each_pod_waits(kube_api, cluster, daemon_args) -> None:
    kube_api.add_pod("huge", cpu="64", unschedulable=True)
    kube_api.add_pod("small", cpu="500m", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 2)
    code, out, err = _invoke("daemon", "explain", "c1", "--json", *daemon_args)
    assert code == 0, err
    report = json.loads(out)
    reasons = {p["pod"]: p["reason"] for p in report["pending"]}
    assert set(reasons) == {"default/huge", "default/small"}
    assert [u["pod"] for u in report["unplaceable"]] == ["default/huge"]
    assert reasons["default/huge"] == report["unplaceable"][0]["reason"]
    assert reasons["default/small"] and reasons["default/small"] != reasons["default/huge"]


def test_an_overlapping_once_run_is_skipped(kube_api, cluster, im_cluster, daemon_args) -> None:
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    with run_lock(resolve_paths().state_dir / "daemon" / "c1.lock"):
        code, _, err = _invoke("daemon", "run", "--cluster", "c1", "--once", *daemon_args)
    assert code == 0
    assert "another daemon run holds" in err
    assert worker_vms(im_cluster) == []


def test_install_hint_names_every_way_to_run_it() -> None:
    code, out, _ = _invoke("daemon", "install-hint", "prod")
    assert code == 0
    for needle in (
        "deployer daemon run --cluster prod --once",
        "cron",
        "systemd",
        "CronJob",
        "--leader-elect",
    ):
        assert needle in out


def test_a_deployment_record_is_enough(
    deployer_home, tmp_path, kube_api, cluster, local_im, im_user, im_cluster
) -> None:
    """No --spec or IM flags: the record gives the IM endpoint, credentials, infrastructure and settings."""
    prepared = render_prepared(im_cluster.spec, deployment_tag="tag-1")
    DeploymentStore(resolve_paths().state_db).add(
        DeploymentRecord(
            name="prod",
            cloud="local",
            im_url=local_im.url,
            infrastructure_id=im_cluster.infra_id,
            deployment_tag="tag-1",
            spec_hash=prepared.spec_hash,
            tosca_redacted=prepared.tosca_redacted,
            status="configured",
            auth_file=str(im_user.auth_file),
        )
    )
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    kubeconfig = str(write_kubeconfig(tmp_path, kube_api.url))
    code, out, err = _invoke(
        "daemon", "run", "--cluster", "prod", "--once", "--json", "--kubeconfig", kubeconfig
    )
    assert code == 0, err
    assert [u["count"] for u in json.loads(out)["scale_ups"]] == [1]
    assert len(worker_vms(im_cluster)) == 1
    code, _, err = _invoke("daemon", "explain", "nope", "--kubeconfig", kubeconfig)
    assert code == 1 and "no deployment named 'nope'" in err


def test_the_config_file_of_the_ansible_role_is_enough(
    deployer_home, tmp_path, kube_api, cluster, local_im, im_user, im_cluster
) -> None:
    """What the elastic_daemon role's timer runs on the front end: `daemon run --once --config FILE`."""
    tosca = yaml.safe_load(render_prepared(im_cluster.spec).tosca_redacted)
    embedded = tosca["topology_template"]["node_templates"]["elasticity"]["properties"]["config"]
    config = tmp_path / "daemon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cluster": "front1",
                "credentials_file": str(im_user.auth_file),
                "settings": {
                    "im_url": local_im.url,
                    "infrastructure_id": im_cluster.infra_id,
                    "kubeconfig": str(write_kubeconfig(tmp_path, kube_api.url)),
                    "spec": embedded,  # the TOSCA property's JSON string, as it was handed over
                },
            }
        )
    )
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    code, out, err = _invoke("daemon", "run", "--once", "--json", "--config", str(config))
    assert code == 0, err
    assert [u["count"] for u in json.loads(out)["scale_ups"]] == [1]
    assert len(worker_vms(im_cluster)) == 1
    config.write_text(yaml.safe_dump({"cluster": "front1", "settings": {"im_uri": "typo"}}))
    code, _, err = _invoke("daemon", "run", "--once", "--config", str(config))
    assert code == 1 and "settings.im_uri is not a daemon setting" in err


def test_once_takes_the_lease_and_skips_while_another_replica_holds_it(
    kube_api, cluster, im_cluster, daemon_args
) -> None:
    kube_api.add_pod("work-0", cpu="1", unschedulable=True)
    wait_for(cluster, lambda s: pending_count(s) == 1)
    running = LeaderElector(
        kube_api.api_client(),
        name="deployer-daemon-c1",
        namespace="default",
        identity="the-running-leader",
        lease_duration=4,
        renew_deadline=3,
        retry_period=1,
    ).start()
    try:
        assert running.wait_for_leadership(10)
        elect = ["--leader-elect", "--lease-namespace", "default", "--lease-seconds", "2"]
        code, out, err = _invoke("daemon", "run", "--cluster", "c1", "--once", *elect, *daemon_args)
        assert code == 0, err
        assert "another replica holds the Lease" in err + out
        assert worker_vms(im_cluster) == []
    finally:
        running.stop()  # releases the Lease

    code, out, err = _invoke("daemon", "run", "--cluster", "c1", "--once", "--json", *elect, *daemon_args)
    assert code == 0, err
    assert [u["count"] for u in json.loads(out)["scale_ups"]] == [1]
    assert len(worker_vms(im_cluster)) == 1
    lease = kube_api.get("Lease", "default", "deployer-daemon-c1")
    assert not lease["spec"].get("holderIdentity")  # released: the next run need not wait for it
