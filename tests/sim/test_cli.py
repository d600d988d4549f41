"""``deployer simulate`` through the real Typer app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deployer.cli.app import app

SPEC = """\
name: simtest
worker_groups:
  - name: wn
    cpus: 4
    memory: 8 GiB
    max: 3
    cost_per_hour: 0.5
edge_groups:
  - name: pis
    power: wol
    hosts:
      - {address: 10.9.0.1, name: pi-1, mac: "dc:a6:32:00:00:01"}
"""
TRACE = "submit_s,cpu,memory_mib,duration_s,arch\n0,1,512,120,\n5,2,1024,300,amd64\n20,1,512,60,arm64\n"


@pytest.fixture
def files(tmp_path, deployer_home):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE)
    return spec, trace


def _run(*args: str):
    return CliRunner().invoke(app, ["simulate", *args], catch_exceptions=False)


def test_json_for_one_policy(files):
    spec, trace = files
    result = _run("--spec", str(spec), "--trace", str(trace), "--policy", "clues", "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["policy"] == "clues"
    assert data["jobs"] == 3
    for key in (
        "jobs_completed",
        "node_hours",
        "cost",
        "lower_bound_node_hours",
        "pending_p50_s",
        "pending_p95_s",
        "pending_max_s",
        "evictions",
        "im_calls",
        "unplaceable",
    ):
        assert key in data
    again = _run("--spec", str(spec), "--trace", str(trace), "--policy", "clues", "--json", "--seed", "3")
    assert json.loads(again.stdout) == data


def test_compare_prints_every_policy_side_by_side(files):
    spec, trace = files
    result = _run("--spec", str(spec), "--trace", str(trace), "--compare")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "deployer" in line)
    for policy in ("deployer", "clues", "static-max", "static-min"):
        assert policy in header
    assert "node-hours" in result.stdout and "evictions" in result.stdout


def test_compare_json_is_one_list(files):
    spec, trace = files
    data = json.loads(_run("--spec", str(spec), "--trace", str(trace), "--compare", "--json").stdout)
    assert [d["policy"] for d in data] == ["deployer", "clues", "static-max", "static-min"]
    assert data[0]["evictions"] == 0


def test_plot_writes_a_png(files, tmp_path):
    spec, trace = files
    out = tmp_path / "plots" / "run.png"
    result = _run("--spec", str(spec), "--trace", str(trace), "--compare", "--plot", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")


def test_a_bad_trace_is_one_line_and_exit_code_1(files, tmp_path):
    spec, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("submit_s,cpu,memory_mib,duration_s\n0,one,512,10\n")
    result = _run("--spec", str(spec), "--trace", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:2: field 'cpu' is not a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_policy_is_a_usage_error(files):
    spec, trace = files
    result = _run("--spec", str(spec), "--trace", str(trace), "--policy", "magic")
    assert result.exit_code == 2


def test_sweep_runs_the_policy_once_per_value_as_a_table_json_and_plot(files, tmp_path):
    spec, trace = files
    out = tmp_path / "sweep.png"
    args = ("--spec", str(spec), "--trace", str(trace), "--sweep", "elasticity.idle_policy=break-even,fixed")
    data = json.loads(_run(*args, "--json", "--plot", str(out)).stdout)
    assert data["sweep"] == "elasticity.idle_policy"
    assert [run["value"] for run in data["runs"]] == ["break-even", "fixed"]
    assert {run["policy"] for run in data["runs"]} == {"deployer"}
    # The same jobs; nodes idle 210 s (180 s boot + 30 s shutdown) under break-even, 300 s when fixed.
    short, long = data["runs"]
    assert short["jobs_completed"] == long["jobs_completed"] == 3
    assert short["node_hours"] < long["node_hours"]
    assert out.read_bytes().startswith(b"\x89PNG")
    table = _run(*args).stdout
    assert "sweep of elasticity.idle_policy" in table
    assert f"{short['node_hours']:.2f}" in table and f"{long['node_hours']:.2f}" in table


@pytest.mark.parametrize(
    ("sweep", "extra", "message"),
    [
        ("elasticity.idle_time", (), "expected FIELD=V1,V2,..."),
        ("elasticity.idle_time=60,soon", (), "--sweep elasticity.idle_time=soon:"),
        ("elasticity.idle_time=60,120", ("--idle-time", "30"), "--idle-time would override every value"),
        ("elasticity.idle_time=60,120", ("--compare",), "drop --compare"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_fix(files, sweep, extra, message):
    spec, trace = files
    result = _run("--spec", str(spec), "--trace", str(trace), "--sweep", sweep, *extra)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
