"""The command line as a user meets it: CliRunner for behaviour, a real subprocess for start-up and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from deployer import __version__
from deployer.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"deployer {__version__}"


def test_render_with_no_spec_on_defaults_masks_secrets_and_reuses_them(deployer_home):
    first = runner.invoke(app, ["render", "--cloud", "egi", "--name", "lab"])
    assert first.exit_code == 0, first.output
    doc = yaml.safe_load(first.stdout)
    assert doc["topology_template"]["node_templates"]["oscar"]["properties"]["password"] == "<redacted>"
    secret_file = deployer_home / "secrets" / "lab.yaml"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    stored = yaml.safe_load(secret_file.read_text())
    assert stored["oscar.oscar_password"] not in first.stdout
    shown = runner.invoke(app, ["render", "--cloud", "egi", "--name", "lab", "--show-secrets"])
    assert stored["oscar.oscar_password"] in shown.stdout
    again = runner.invoke(app, ["render", "--cloud", "egi", "--name", "lab", "--show-secrets"])
    assert again.stdout == shown.stdout  # byte-identical: generated secrets were persisted and reused


def test_generated_name_is_made_once(deployer_home):
    names = {
        yaml.safe_load(runner.invoke(app, ["render", "--cloud", "egi"]).stdout)["metadata"]["cluster_name"]
        for _ in range(2)
    }
    assert len(names) == 1 and names.pop().startswith("oscar-")


def test_render_to_a_file_is_private(deployer_home, tmp_path):
    target = tmp_path / "out.yaml"
    result = runner.invoke(app, ["render", str(ROOT / "examples" / "local-demo.yaml"), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.stat().st_mode & 0o777 == 0o600
    assert yaml.safe_load(target.read_text())["metadata"]["cluster_name"] == "local-demo"


def test_validate_both_kinds_with_json(deployer_home, tmp_path):
    spec = ROOT / "examples" / "edge-hybrid.yaml"
    result = runner.invoke(app, ["validate", str(spec), "--json"])
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["kind"] == "spec"
    tosca = tmp_path / "t.yaml"
    runner.invoke(app, ["render", str(spec), "-o", str(tosca)])
    result = runner.invoke(app, ["validate", str(tosca), "--json"])
    assert result.exit_code == 0 and yaml.safe_load(result.stdout)["kind"] == "tosca"
    assert not list(deployer_home.glob("secrets/validate*"))  # validate persists nothing of its own


def test_user_error_is_one_line_with_exit_code_1(deployer_home):
    result = runner.invoke(app, ["render", "--set", "worker_groups[0].mx=3"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: worker_groups[0].mx: unknown field; did you mean 'max'?"


def test_usage_error_has_exit_code_2():
    assert runner.invoke(app, ["render", "--no-such-flag"]).exit_code == 2


def _run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEPLOYER_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_real_process_bad_spec_file_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("worker_groups:\n  - {min: 3, max: 1}\n")
    proc = _run("render", str(bad), home=tmp_path / "home")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {bad}: worker_groups[0].max: must be >= min (3)"
    assert proc.stdout == ""


def test_real_process_render_succeeds(tmp_path):
    proc = _run("render", "--cloud", "egi", "--name", "p1", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["metadata"]["cluster_name"] == "p1"


def test_help_does_not_import_heavy_modules(tmp_path):
    code = (
        "import sys, runpy\n"
        "sys.argv = ['deployer', '--help']\n"
        "try:\n    runpy.run_module('deployer', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('toscaparser', 'kubernetes', 'ansible', 'matplotlib', 'openstack', 'requests')"
        " if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert "HEAVY=" in proc.stderr
    assert proc.stderr.split("HEAVY=")[1].strip() == ""
