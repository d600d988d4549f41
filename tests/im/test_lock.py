"""Lock files against the real IM: lock, create from the lock, export, recreate; refusal on drift."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from deployer.adapters.state.store import DeploymentStore
from deployer.paths import resolve_paths

pytestmark = pytest.mark.im

SPEC = """cloud: local
elasticity:
  enabled: false
worker_groups:
  - name: wn
    cpus: 1
    max: 3
    initial: 1
"""


def record(name):
    return DeploymentStore(resolve_paths().state_db).get(name)


def create_from(cli, lock, name, code=0):
    args = ["create", str(lock), "--name", name, "--im-url", cli.url, "--auth-file", str(cli.auth_file)]
    return cli(*args, "--timeout", "60", code=code)


def comparable_tosca(name):
    rec = record(name)
    return rec.tosca_redacted.replace(name, "NAME").replace(rec.deployment_tag, "TAG")


def test_lock_create_export_and_recreate_the_same_cluster(cli, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text(SPEC)
    lock = tmp_path / "lab.lock.yaml"
    cli("lock", str(spec), "-o", str(lock))
    pins = yaml.safe_load(lock.read_text())["pins"]
    assert pins["types"]["mode"] == "local" and len(pins["types"]["sha256"]) == 64
    assert pins["images"] == {"front": "dummy://deployer/ubuntu-22.04", "wn": "dummy://deployer/ubuntu-22.04"}
    assert yaml.safe_load(lock.read_text())["spec"]["kubernetes"]["admin_token"] is None  # no secrets

    assert "lab-a: configured" in create_from(cli, lock, "lab-a").stderr

    # The cluster grew since: export recreates it as it is now.
    cli("scale", "lab-a", "--group", "wn", "--count", "2", "--timeout", "60")
    cli("export", "lab-a", "-o", str(tmp_path))
    exported_spec = yaml.safe_load((tmp_path / "lab-a.spec.yaml").read_text())
    assert exported_spec["worker_groups"][0]["initial"] == 2
    assert exported_spec["worker_groups"][0]["cpus"] == 1 and exported_spec["worker_groups"][0]["max"] == 3
    assert exported_spec["kubernetes"]["admin_token"] is None
    exported_lock = tmp_path / "lab-a.lock.yaml"
    assert yaml.safe_load(exported_lock.read_text())["pins"] == pins

    create_from(cli, exported_lock, "lab-b")
    cli("scale", "lab-a", "--group", "wn", "--count", "1", "--timeout", "60")
    cli("scale", "lab-b", "--group", "wn", "--count", "1", "--timeout", "60")
    # Same template, types, images and sizes: the two TOSCA documents differ only by name and tag.
    create_from(cli, lock, "lab-c")
    assert comparable_tosca("lab-c") == comparable_tosca("lab-a")
    for name in ("lab-a", "lab-b", "lab-c"):
        cli("destroy", name, "--yes")


def test_create_from_a_lock_refuses_with_a_diff_when_a_pin_changed(cli, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text(SPEC)
    lock = tmp_path / "lab.lock.yaml"
    cli("lock", str(spec), "-o", str(lock))
    document = yaml.safe_load(lock.read_text())
    document["pins"]["template"]["sha256"] = "0" * 64  # as if deployer's template changed since
    document["pins"]["images"]["wn"] = "dummy://deployer/ubuntu-20.04"
    lock.write_text(yaml.safe_dump(document))
    refused = create_from(cli, lock, "drifted", code=1)
    assert f"template.sha256: locked {'0' * 64}, now " in refused.stderr
    assert (
        "images.wn: locked dummy://deployer/ubuntu-20.04, now dummy://deployer/ubuntu-22.04" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert DeploymentStore(resolve_paths().state_db).find("drifted") is None
    flags = cli("create", str(lock), "--set", "front.cpus=4", code=1)
    assert "is a lock file" in flags.stderr


class FakeGitHub:
    """The one GitHub API call a lock makes: the commit a ref names (``application/vnd.github.sha``)."""

    def __init__(self, commits: dict[str, str]) -> None:
        self.commits = commits
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                ref = self.path.rsplit("/", 1)[-1]
                sha = fake.commits.get(ref)
                body = (sha or '{"message": "No commit found"}').encode()
                self.send_response(200 if sha else 422)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_remote_types_are_pinned_to_the_commit_and_a_vanished_commit_is_refused(
    cli, tmp_path: Path, monkeypatch
):
    sha = "3f2c1b0a" * 5
    github = FakeGitHub({"main": "<html>a captive portal</html>"})
    monkeypatch.setenv("DEPLOYER_GITHUB_API", github.url)
    try:
        spec = tmp_path / "lab.yaml"
        spec.write_text(SPEC + "types: remote\n")
        lock = tmp_path / "lab.lock.yaml"
        garbage = cli("lock", str(spec), "-o", str(lock), code=3)  # never put into the URL the IM fetches
        assert "did not answer a commit id" in garbage.stderr and not lock.exists()
        github.commits.update({"main": sha, sha: sha})
        cli("lock", str(spec), "-o", str(lock), "--name", "remote-lab")
        types = yaml.safe_load(lock.read_text())["pins"]["types"]
        assert types == {
            "mode": "remote",
            "commit": sha,
            "url": f"https://raw.githubusercontent.com/grycap/tosca/{sha}/custom_types.yaml",
        }
        github.commits["main"] = "9" * 40  # upstream moved on: the lock keeps its commit
        rendered = cli("render", str(lock)).stdout
        assert f"deployer_types: {types['url']}" in rendered

        del github.commits[sha]  # the pinned commit is gone (force-push)
        refused = cli("render", str(lock), code=1)
        assert f"types.commit: locked {sha}, now (no longer available)" in refused.stderr
    finally:
        github.stop()
