"""Trace files: both formats parse to the same jobs, and each mistake is named by file:line and field."""

from __future__ import annotations

import json

import pytest

from deployer.errors import UserError
from deployer.sim.trace import TraceJob, load_trace, write_trace_csv


def test_csv_with_optional_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "submit_s,cpu,memory_mib,duration_s,arch,gpu,kind\n5,0.5,512,60,arm64,1,service\n0,2,1024,30,,,\n"
    )
    jobs = load_trace(path)
    assert jobs == [
        TraceJob(0.0, 2000, 1024, 30.0, None, 0, "job"),  # sorted by submit time
        TraceJob(5.0, 500, 512, 60.0, "arm64", 1, "service"),
    ]


def test_jsonl_gives_the_same_jobs_as_csv(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("submit_s,cpu,memory_mib,duration_s,arch\n0,1,256,10,amd64\n3,4,8192,100,\n")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(
        json.dumps({"submit_s": 0, "cpu": 1, "memory_mib": 256, "duration_s": 10, "arch": "amd64"})
        + "\n\n"
        + json.dumps({"submit_s": 3, "cpu": 4, "memory_mib": 8192, "duration_s": 100})
        + "\n"
    )
    assert load_trace(jsonl) == load_trace(csv_path)


def test_written_trace_reads_back(tmp_path):
    jobs = [
        TraceJob(0.5, 1500, 768, 90.0, "arm64", 0, "job"),
        TraceJob(7.0, 2000, 1024, 3600.0, None, 1, "service"),
    ]
    path = tmp_path / "out.csv"
    write_trace_csv(path, jobs)
    assert load_trace(path) == jobs


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("submit_s,cpu,memory_mib\n0,1,2\n", ":1: header lacks field 'duration_s'"),
        ("submit_s,cpu,memory_mib,duration_s\n0,1,2,3\n0,x,2,3\n", ":3: field 'cpu' is not a number: 'x'"),
        ("submit_s,cpu,memory_mib,duration_s\n0,1,2\n", ":2: expected 4 fields"),
        (
            "submit_s,cpu,memory_mib,duration_s\n-1,1,2,3\n",
            ":2: field 'submit_s' must be a finite number >= 0",
        ),
        ("submit_s,cpu,memory_mib,duration_s\n0,1,2.5,3\n", ":2: field 'memory_mib' must be a whole number"),
        ("submit_s,cpu,memory_mib,duration_s\n0,1,2,0\n", ":2: field 'duration_s' must be a finite number"),
        (
            "submit_s,cpu,memory_mib,duration_s,arch\n0,1,2,3,x86\n",
            ":2: field 'arch' must be one of amd64, arm64",
        ),
        (
            "submit_s,cpu,memory_mib,duration_s,kind\n0,1,2,3,cron\n",
            ":2: field 'kind' must be one of job, service",
        ),
        ("submit_s,cpu,memory_mib,duration_s,prio\n0,1,2,3,4\n", ":2: unknown field 'prio'"),
        ("submit_s,cpu,memory_mib,duration_s\n", ": the trace holds no jobs"),
        ("", ":1: empty trace"),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError) as err:
        load_trace(path)
    assert f"{path}{expected}" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", ":2: not valid JSON"),
        ("[1, 2]", ":2: each line must be a JSON object"),
        ('{"submit_s": 0, "cpu": 1, "memory_mib": 2}', ":2: field 'duration_s' is missing or empty"),
        ('{"submit_s": 0, "cpu": true, "memory_mib": 2, "duration_s": 1}', ":2: field 'cpu' is missing"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"submit_s": 0, "cpu": 1, "memory_mib": 2, "duration_s": 3}\n' + line + "\n")
    with pytest.raises(UserError) as err:
        load_trace(path)
    assert f"{path}{expected}" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="no such trace file"):
        load_trace(tmp_path / "nope.csv")
