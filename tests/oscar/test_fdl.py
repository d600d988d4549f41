"""FDL parsing and validation (pure core) and FDL files with their scripts (lifecycle)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deployer.core.fdl import parse_fdl, secret_values, service_payload
from deployer.errors import SpecError, UserError
from deployer.lifecycle.oscar import load_fdl


def _service(**fields):
    return {"name": "cowsay", "image": "ghcr.io/grycap/cowsay", "script": "cowsay.sh", **fields}


def _fdl(*services, cluster="oscar-a", **top):
    return {"functions": {"oscar": [{cluster: s} for s in services]}, **top}


def test_services_get_their_cluster_id_cpu_as_string_and_normalised_environment():
    fdl = parse_fdl(
        {
            "functions": {
                "oscar": [
                    {"edge": _service(name="one", cpu=1, memory="1Gi", environment={"Variables": {"N": 3}})},
                    {"cloud": _service(name="two", cpu=0.5, environment={"variables": {"N": "3"}})},
                    {"edge": _service(name="three", cpu="500m")},
                ]
            }
        },
        "f.yaml",
    )
    one, two, three = fdl.services
    assert [s.cluster_id for s in fdl.services] == ["edge", "cloud", "edge"]
    assert fdl.cluster_ids() == ("edge", "cloud")
    assert (one.definition["cpu"], two.definition["cpu"], three.definition["cpu"]) == ("1", "0.5", "500m")
    # Both spellings OSCAR's examples use become the JSON field OSCAR reads.
    assert one.definition["environment"] == two.definition["environment"] == {"variables": {"N": "3"}}
    assert one.definition["cluster_id"] == "edge"
    payload = service_payload(one, "echo hi\n")
    assert payload["script"] == "echo hi\n" and payload["name"] == "one"
    assert "script" not in one.definition


def test_top_level_storage_providers_and_clusters_are_copied_into_every_service():
    minio_b = {"endpoint": "https://minio.b.example", "access_key": "ak", "secret_key": "sk-b-secret"}
    s3 = {"access_key": "AKIA", "secret_key": "s3-secret", "region": "us-east-1"}
    own = {"endpoint": "https://minio.own.example", "access_key": "ak2", "secret_key": "own-secret"}
    data = _fdl(
        _service(name="one", output=[{"storage_provider": "minio.b", "path": "bucket/out"}]),
        _service(
            name="two",
            output=[{"storage_provider": "s3.aws", "path": "/results/"}],
            storage_providers={"minio": {"b": own}},
        ),
        storage_providers={"minio": {"b": minio_b}, "s3": {"aws": s3}},
        clusters={"b": {"endpoint": "https://b.example", "auth_user": "oscar", "auth_password": "cl-pass"}},
    )
    one, two = parse_fdl(data, "f.yaml").services
    assert one.definition["storage_providers"] == {"minio": {"b": minio_b}, "s3": {"aws": s3}}
    assert two.definition["storage_providers"] == {"minio": {"b": own}, "s3": {"aws": s3}}  # its own wins
    assert one.definition["clusters"] == two.definition["clusters"]
    assert two.definition["output"] == [{"storage_provider": "s3.aws", "path": "results"}]
    found = secret_values(parse_fdl(data, "f.yaml"))
    assert {"sk-b-secret", "s3-secret", "own-secret", "cl-pass"} <= set(found)


def test_one_cluster_id_many_times_and_choosing_services_by_cluster():
    fdl = parse_fdl(
        {
            "functions": {
                "oscar": [{"a": _service(name="x")}, {"b": _service(name="x")}, {"a": _service(name="y")}]
            }
        },
        "f.yaml",
    )
    assert [s.name for s in fdl.for_cluster("a")] == ["x", "y"]
    assert [s.name for s in fdl.for_cluster("b")] == ["x"]
    with pytest.raises(SpecError, match=r"several clusters \(a, b\); choose one"):
        fdl.for_cluster(None)
    with pytest.raises(SpecError, match="no services under cluster id 'c'"):
        fdl.for_cluster("c")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "f.yaml: an FDL must be a YAML mapping"),
        ({"function": {}}, "f.yaml: function: unknown field; did you mean 'functions'?"),
        ({"functions": {}}, "f.yaml: functions: missing; write 'functions: oscar:"),
        ({"functions": {"oscar": [], "aws": []}}, "f.yaml: functions.aws: only OSCAR services"),
        ({"functions": {"oscar": []}}, "functions.oscar: must be a non-empty list"),
        (
            {"functions": {"oscar": [{"a": _service(), "b": _service()}]}},
            "functions.oscar[0]: each item is a one-key",
        ),
        (_fdl(_service(name="Bad_Name")), "functions.oscar[0].oscar-a.name: required: 1-39 lowercase"),
        (_fdl(_service(name="x" * 40)), ".name: required: 1-39"),
        (
            _fdl({"name": "x", "script": "s.sh"}),
            "functions.oscar[0].oscar-a.image: must be a non-empty string",
        ),
        (
            _fdl(_service(script=None)),
            ".script: must be a non-empty string (a script path relative to the FDL file)",
        ),
        (_fdl(_service(imgae="x")), "functions.oscar[0].oscar-a.imgae: unknown field; did you mean 'image'?"),
        (_fdl(_service(token="abc")), ".token: is set by the OSCAR server; remove it"),
        (_fdl(_service(cpu="lots")), ".cpu: 'lots' is not a CPU amount; write e.g. 0.5, 1 or 500m"),
        (_fdl(_service(cpu=0)), ".cpu: '0' is not a CPU amount"),
        (
            _fdl(_service(memory="2 GB")),
            ".memory: '2 GB' is not a Kubernetes quantity; write e.g. 512Mi or 2Gi",
        ),
        (
            _fdl(_service(log_level="chatty")),
            ".log_level: must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG",
        ),
        (_fdl(_service(enable_gpu="yes")), ".enable_gpu: must be true or false"),
        (_fdl(_service(environment={"Vars": {}})), ".environment.Vars: unknown field; use Variables"),
        (
            _fdl(_service(environment={"Variables": {"A": "1"}, "variables": {"B": "2"}})),
            ".environment.variables: given twice",
        ),
        (
            _fdl(_service(input=[{"storage_provider": "minio.edge", "path": "in"}])),
            ".input[0].storage_provider: 'minio.edge' is not defined; add storage_providers.minio.edge",
        ),
        (
            _fdl(_service(input=[{"storage_provider": "ftp", "path": "in"}])),
            ".input[0].storage_provider: unknown storage type 'ftp'",
        ),
        (
            _fdl(_service(output=[{"storage_provider": "minio"}])),
            ".output[0].path: must be a non-empty string",
        ),
        (
            _fdl(_service(output=[{"storage_provider": "minio", "path": "b", "sufix": []}])),
            ".output[0].sufix: unknown field; did you mean 'suffix'?",
        ),
        (_fdl(_service(input={"storage_provider": "minio"})), ".input: must be a list"),
        (_fdl(_service(cluster_id="other")), ".cluster_id: differs from the item's key 'oscar-a'"),
        (
            _fdl(_service(), _service()),
            "functions.oscar[1].oscar-a.name: 'cowsay' is already defined at functions.oscar[0].oscar-a",
        ),
        (
            _fdl(_service(), clusters={"b": {"auth_user": "u"}}),
            "f.yaml: clusters.b.endpoint: must be a non-empty string",
        ),
        (
            _fdl(_service(), storage_providers={"ftp": {}}),
            "f.yaml: storage_providers.ftp: unknown storage type",
        ),
    ],
)
def test_bad_fdls_name_the_field_path_and_the_fix(data, expected):
    with pytest.raises(SpecError) as caught:
        parse_fdl(data, "f.yaml")
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 1


def test_errors_never_quote_a_secret_value():
    secret = "s3cr3t-value-never-shown"
    cases = [
        _fdl(_service(environment={"Secrets": {"API_KEY": [secret]}})),
        _fdl(_service(), storage_providers={"minio": {"x": secret}}),
        _fdl(
            _service(), clusters={"b": {"endpoint": "https://b", "auth_password": secret, "ssl_verify": "no"}}
        ),
    ]
    for data in cases:
        with pytest.raises(SpecError) as caught:
            parse_fdl(copy.deepcopy(data), "f.yaml")
        assert secret not in str(caught.value)


def _write(folder: Path, fdl: dict, scripts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    path = folder / "services.yaml"
    path.write_text(yaml.safe_dump(fdl))
    return path


def test_scripts_are_read_relative_to_the_fdl_file_not_the_working_directory(tmp_path, monkeypatch):
    path = _write(
        tmp_path / "project",
        _fdl(_service(name="a", script="scripts/a.sh"), _service(name="b", script="b.sh")),
        {"scripts/a.sh": "#!/bin/sh\necho a\n", "b.sh": "echo b\n"},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_fdl(path)
    assert [p["script"] for p in loaded.payloads()] == ["#!/bin/sh\necho a\n", "echo b\n"]


def test_missing_script_and_bad_yaml_are_one_line_errors(tmp_path):
    path = _write(tmp_path, _fdl(_service(script="missing.sh")), {})
    with pytest.raises(
        UserError,
        match=r"services.yaml: functions.oscar\[0\].oscar-a.script: no file .*missing.sh \(the path is relative to the FDL's folder\)",
    ):
        load_fdl(path)
    path.write_text("functions: [unclosed\n")
    with pytest.raises(UserError, match=r"services.yaml:\d+: .*fix the YAML syntax"):
        load_fdl(path)
    with pytest.raises(UserError, match="no such FDL file"):
        load_fdl(tmp_path / "nope.yaml")
