"""Auth-file lines: what we write, the real IM parses back to the same values (and so do we)."""

from __future__ import annotations

import json

import pytest

from deployer.adapters.im.auth import AuthEntry, auth_header, load_auth_file, parse_auth_text, write_auth_file
from deployer.errors import UserError

IM_auth = pytest.importorskip("IM.auth", reason="the IM package parses the lines we write")

AWKWARD_VALUES = [
    "plain",
    "with space",
    "semi;colon",
    "token==",
    "a = b",
    "it's",
    'say "hi"',
    "both ' and \" quotes",
    "ends with backslash\\",
    "",
    "-----BEGIN KEY-----\nabc\n-----END KEY-----",
]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_line_round_trips_through_the_real_im_parser(value):
    entry = AuthEntry("OpenStack", "site1", {"username": "u", "password": value, "host": "https://h:5000"})
    parsed_by_im = IM_auth.Authentication.read_auth_data([entry.line()])[0]
    assert parsed_by_im == {
        "id": "site1",
        "type": "OpenStack",
        "username": "u",
        "password": value,
        "host": "https://h:5000",
    }
    assert parse_auth_text(entry.line(), "test") == [entry]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_header_round_trips_through_the_im_header_rules(value):
    entries = [
        AuthEntry("InfrastructureManager", None, {"username": "user", "password": value}),
        AuthEntry("Dummy", "local", {}),
    ]
    header = auth_header(entries)
    # IM.rest.routers.get_auth_header: "\\\\n" is a newline inside a value, "\\n" separates lines.
    lines = header.replace("\\\\n", "\n").split("\\n")
    parsed = IM_auth.Authentication.read_auth_data(lines)
    assert parsed == [
        {"type": "InfrastructureManager", "username": "user", "password": value},
        {"id": "local", "type": "Dummy"},
    ]


def test_secret_values():
    entry = AuthEntry(
        "EC2", "aws", {"username": "AKIA", "password": "s3cr3t-value", "token": "tok-123456", "host": "h"}
    )
    assert sorted(entry.secret_values()) == ["s3cr3t-value", "tok-123456"]
    assert AuthEntry("X", None, {"client_secret": "abc", "private_key": "k"}).secret_values() == ["abc", "k"]


def test_file_parsing_comments_file_values_and_json(tmp_path):
    (tmp_path / "key.pem").write_text("KEYDATA\n")
    auth = tmp_path / "auth.dat"
    auth.write_text(
        "# my clouds\n\n"
        "type = InfrastructureManager; username = me; password = 'p;w'\n"
        "id = os; type = OpenStack; host=https://x:5000; private_key = file(key.pem)\n"
    )
    entries = load_auth_file(auth)
    assert entries[0] == AuthEntry("InfrastructureManager", None, {"username": "me", "password": "p;w"})
    assert entries[1].fields == {"host": "https://x:5000", "private_key": "KEYDATA"}
    as_json = tmp_path / "auth.json"
    as_json.write_text(json.dumps([{"type": "InfrastructureManager", "token": "abc"}]))
    assert load_auth_file(as_json) == [AuthEntry("InfrastructureManager", None, {"token": "abc"})]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("type = Dummy; oops\n", "auth.dat:1: 'oops' is not 'key = value'"),
        ("\n\nid = a; password = 'open\n", "auth.dat:3: unterminated quote"),
        ("id = a; username = u\n", "auth.dat:1: missing 'type = ...'"),
        ("type = Dummy; id = 1abc\n", "auth.dat:1: auth id '1abc' must start with a letter"),
        ("type = Dummy; id = a; id = b\n", "auth.dat:1: field 'id' appears twice"),
        ("type = X; password = file(/nonexistent/x)\n", "auth.dat:1: cannot read /nonexistent/x"),
    ],
)
def test_parse_errors_name_file_line_and_fix(text, expected):
    with pytest.raises(UserError) as caught:
        parse_auth_text(text, "auth.dat")
    assert str(caught.value).startswith(expected)


def test_written_auth_file_is_private(tmp_path):
    path = tmp_path / "auth.dat"
    write_auth_file(path, [AuthEntry("Dummy", "local", {})])
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_auth_file(path) == [AuthEntry("Dummy", "local", {})]


def test_unrepresentable_values_are_refused():
    with pytest.raises(ValueError, match="leading/trailing"):
        AuthEntry("X", None, {"password": " padded"}).line()
    with pytest.raises(ValueError, match="server-side path"):
        AuthEntry("X", None, {"password": "file(/etc/passwd)"}).line()


@pytest.mark.im
def test_awkward_password_works_against_the_real_server(local_im):
    from deployer.adapters.im.client import IMClient
    from deployer.errors import AuthError
    from tests.im.templates import new_tag, small_tosca

    password = 'p;a=s\'s "w"\nline2\\'
    entries = [
        AuthEntry("InfrastructureManager", None, {"username": f"awkward-{new_tag()}", "password": password}),
        AuthEntry("Dummy", "local", {}),
    ]
    tag = new_tag()
    with IMClient(local_im.url, entries) as owner:
        inf_id = owner.create(small_tosca(tag))
        try:
            wrong = [
                AuthEntry("InfrastructureManager", None, {**entries[0].fields, "password": password[:-1]})
            ]
            with IMClient(local_im.url, wrong) as other, pytest.raises(AuthError):
                other.state(inf_id)
            with IMClient(local_im.url, entries) as same:
                assert same.list_ids() == [inf_id]
        finally:
            owner.destroy(inf_id)
