"""Sandbox processes through the CLI, without an IM (nothing listens at the recorded IM URL): several
deployments at once, each with its own sandbox and kubeconfig; ``deployer local stop`` stops them all and
the next use brings each back on its port with its objects; a destroy that the IM cannot carry out keeps
the sandbox's objects."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deployer.adapters.state.store import DeploymentRecord, DeploymentStore
from deployer.core.spec import fill_secrets, validate_spec
from deployer.lifecycle.prepare import render_prepared
from deployer.paths import resolve_paths
from deployer.sandbox.processes import SandboxServer, sandbox_dir
from tests.ansible.cli import deployer

KUBECTL = shutil.which("kubectl")
NAMES = ("one", "two")


def record(name: str) -> None:
    """A local deployment as `deployer create` records it, on an IM that does not answer."""
    spec, _ = fill_secrets(
        validate_spec({"name": name, "cloud": "local", "worker_groups": [{"name": "wn", "max": 2}]}),
        {},
        lambda *_, **__: "not-a-real-secret",
    )
    prepared = render_prepared(spec, deployment_tag=f"tag-{name}")
    DeploymentStore(resolve_paths().state_db).add(
        DeploymentRecord(
            name=name,
            cloud="local",
            im_url="http://127.0.0.1:9",
            infrastructure_id=f"infra-{name}",
            deployment_tag=f"tag-{name}",
            spec_hash=prepared.spec_hash,
            tosca_redacted=prepared.tosca_redacted,
            status="configured",
            simulated=True,
        )
    )


@pytest.fixture
def home(deployer_home: Path) -> Iterator[Path]:
    for name in NAMES:
        record(name)
    try:
        yield deployer_home
    finally:
        deployer(deployer_home, "local", "stop")


def kubeconfig(home: Path, name: str) -> Path:
    done = deployer(home, "kubeconfig", name, "--json")
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["kubeconfig"])


def server_url(config: Path) -> str:
    import yaml

    return yaml.safe_load(config.read_text())["clusters"][0]["cluster"]["server"]


def pods(url: str) -> list[str]:
    with requests.Session() as session:
        session.trust_env = False
        listed = session.get(f"{url}/api/v1/namespaces/default/pods", timeout=10).json()
    return [pod["metadata"]["name"] for pod in listed["items"]]


def test_several_sandboxes_stop_together_come_back_with_their_objects_and_survive_a_failed_destroy(
    home: Path,
) -> None:
    paths = resolve_paths()
    configs = {name: kubeconfig(home, name) for name in NAMES}
    urls = {name: server_url(config) for name, config in configs.items()}
    assert len(set(urls.values())) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls.values())
    assert all(stat.S_IMODE(c.stat().st_mode) == 0o600 for c in configs.values())
    if KUBECTL:
        shown = subprocess.run(
            [KUBECTL, "--kubeconfig", str(configs["one"]), "get", "nodes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shown.returncode == 0 and "front" in shown.stdout, shown.stderr
    with requests.Session() as session:
        session.trust_env = False
        made = session.post(
            f"{urls['one']}/api/v1/namespaces/default/pods",
            json={"metadata": {"name": "kept"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
            timeout=10,
        )
    assert made.status_code == 201
    assert pods(urls["two"]) == []

    stopped = deployer(home, "local", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert (
        "sandbox cluster of one stopped" in stopped.stderr
        and "sandbox cluster of two stopped" in stopped.stderr
    )
    assert all(SandboxServer(paths, name).status() is None for name in NAMES)

    # The next use starts it again: same port (the kubeconfig stays valid), same objects.
    assert server_url(kubeconfig(home, "one")) == urls["one"]
    assert pods(urls["one"]) == ["kept"]

    # A destroy the IM cannot carry out stops the sandbox first but keeps its objects.
    done = deployer(home, "destroy", "one", "--yes")
    assert done.returncode == 3, done.stderr  # the IM did not answer: the deployment still exists
    assert SandboxServer(paths, "one").status() is None
    assert (sandbox_dir(paths, "one") / "objects.json").exists()


def test_demo_rejects_a_bad_trace_before_creating_anything(deployer_home: Path) -> None:
    trace = deployer_home / "trace.csv"
    trace.write_text("submit_s,cpu,memory_mib,duration_s\n0,2,512,soon\n")
    done = deployer(deployer_home, "demo", "--trace", str(trace))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {trace}:2: field 'duration_s' is not a number: 'soon'"
    )
    assert DeploymentStore(resolve_paths().state_db).all() == []
