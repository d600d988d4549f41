"""The OSCAR REST client against the loopback fake: real status codes, shapes, and a misbehaving server."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import time

import pytest

from deployer.adapters.oscar.client import Credentials, OscarClient
from deployer.errors import (
    AuthError,
    RemoteConflict,
    RemoteError,
    RemoteNotFound,
    TimeoutExpired,
    TransientError,
)
from tests.fixtures.oscar_fake import FakeOscar, serve_fake


def _client(fake: FakeOscar, **options) -> OscarClient:
    return OscarClient(fake.url, Credentials(user="oscar", password=fake.password), **options)


def _service(name: str = "cowsay", **fields) -> dict:
    return {"name": name, "image": "ghcr.io/grycap/cowsay", "script": "echo hi", **fields}


def test_service_crud_with_real_status_codes(oscar_fake):
    with _client(oscar_fake) as client:
        assert client.get_service("cowsay") is None
        client.create_service(_service(cpu="0.5"))
        created = client.get_service("cowsay")
        assert created is not None and created["cpu"] == "0.5" and len(created["token"]) == 64
        with pytest.raises(
            RemoteError, match=r"create OSCAR service cowsay: OSCAR answered 400: A service with name"
        ):
            client.create_service(_service())  # OSCAR refuses a name in use with a 400
        assert client.update_service(_service(memory="1Gi")) is None
        updated = client.get_service("cowsay")
        assert updated["memory"] == "1Gi" and updated["token"] == created["token"]  # PUT keeps the token
        assert [s["name"] for s in client.list_services()] == ["cowsay"]
        client.delete_service("cowsay")
        with pytest.raises(RemoteNotFound, match=r"\(404: The service \"cowsay\" does not exist\)"):
            client.delete_service("cowsay")
        with pytest.raises(RemoteNotFound):
            client.update_service(_service())
    statuses = [(r.method, r.path) for r in oscar_fake.requests]
    assert ("POST", "/system/services") in statuses and ("PUT", "/system/services") in statuses
    assert all(r.authorization and r.authorization.startswith("Basic ") for r in oscar_fake.requests)


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ({"status": 401}, AuthError, "refused the credentials (401); check the user and password (or token)"),
        ({"status": 403, "text": "not the owner"}, AuthError, "OSCAR denied it (403: not the owner)"),
        ({"status": 404, "text": "gone"}, RemoteNotFound, "not found on OSCAR (404: gone)"),
        (
            {"status": 409, "text": "secret already exists"},
            RemoteConflict,
            "conflict (409: secret already exists)",
        ),
        (
            {"status": 500, "text": "boom\nwith a second line"},
            TransientError,
            "OSCAR server error 500: boom with a second line",
        ),
        ({"status": 503}, TransientError, "OSCAR server error 503"),
        ({"html": True}, RemoteError, "answered 200 with a non-JSON body (text/html, "),
    ],
)
def test_each_failure_is_a_typed_one_line_error(oscar_fake, fault, error, message):
    oscar_fake.fail(**fault)
    with _client(oscar_fake) as client, pytest.raises(error) as caught:
        client.list_services()
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "<html" not in str(caught.value).lower()


def test_wrong_password_is_a_401_that_never_shows_the_password(oscar_fake):
    wrong = "not-the-password-123"
    client = OscarClient(oscar_fake.url, Credentials(user="oscar", password=wrong))
    with client, pytest.raises(AuthError) as caught:
        client.list_services()
    assert caught.value.status == 401 and wrong not in str(caught.value)
    assert repr(Credentials(user="oscar", password=wrong)).count(wrong) == 0


def test_a_server_message_that_echoes_the_password_is_redacted(oscar_fake):
    oscar_fake.fail(status=500, text=f"bad auth header for oscar:{oscar_fake.password}")
    with _client(oscar_fake) as client, pytest.raises(TransientError) as caught:
        client.list_services()
    assert oscar_fake.password not in str(caught.value) and "***" in str(caught.value)


def test_a_slow_answer_is_a_timeout_within_the_read_timeout(oscar_fake):
    oscar_fake.fail(delay=3.0, path_prefix="/system/services")
    started = time.monotonic()
    with _client(oscar_fake, timeout=(2.0, 0.5)) as client, pytest.raises(TimeoutExpired) as caught:
        client.list_services()
    assert time.monotonic() - started < 2.9  # gave up before the server answered
    assert "did not answer within 0.5s" in str(caught.value) and caught.value.exit_code == 4


def test_nobody_listening_is_a_transient_error():
    client = OscarClient("http://127.0.0.1:9", Credentials(user="oscar", password="whatever-pass"))
    with client, pytest.raises(TransientError, match=r"OSCAR at http://127\.0\.0\.1:9 is unreachable"):
        client.list_services()


def test_run_uses_the_service_token_and_job_and_logs_follow_pages(oscar_fake):
    oscar_fake.log_page_size = 2
    with _client(oscar_fake) as client:
        client.create_service(_service())
        token = client.get_service("cowsay")["token"]
        answer = client.run("cowsay", base64.b64encode(b"moo"), read_timeout=10)
        assert base64.b64decode(answer) == b"processed:moo"
        for _ in range(5):
            client.job("cowsay", base64.b64encode(b"x"))
        jobs = client.list_jobs("cowsay")
        assert len(jobs) == 5 and all(j.name.startswith("cowsay-") and j.status == "Succeeded" for j in jobs)
        assert "processed 4 bytes" in client.job_logs("cowsay", jobs[0].name)
        with pytest.raises(RemoteNotFound):
            client.job_logs("cowsay", "cowsay-unknown")
    invocations = oscar_fake.calls("POST", "/run/") + oscar_fake.calls("POST", "/job/")
    assert {r.authorization for r in invocations} == {f"Bearer {token}"}  # never basic auth
    listings = [r for r in oscar_fake.calls("GET") if r.path == "/system/logs/cowsay"]
    assert len(listings) == 3  # 5 jobs, pages of 2


def test_an_oidc_token_is_sent_as_bearer_everywhere(oscar_fake):
    with OscarClient(oscar_fake.url, Credentials(token=oscar_fake.oidc_token)) as client:
        client.create_service(_service())
        client.job("cowsay", b"eA==")
    assert {r.authorization for r in oscar_fake.requests} == {f"Bearer {oscar_fake.oidc_token}"}
    assert oscar_fake.calls("GET", "/system/services/") == []  # no need to fetch the service token


def test_run_without_a_serverless_backend_says_to_use_a_job(oscar_fake):
    oscar_fake.run_route = False
    with _client(oscar_fake) as client:
        client.create_service(_service())
        with pytest.raises(RemoteNotFound, match=r"no /run route .*use `deployer oscar job cowsay` instead"):
            client.run("cowsay", b"", read_timeout=5)
        with pytest.raises(RemoteNotFound, match="OSCAR has no such service"):
            client.job("ghost", b"")


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-oscar")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_is_verified_by_default(tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with serve_fake(FakeOscar(password="tls-fake-password"), context) as fake:
        with (
            _client(fake) as client,
            pytest.raises(RemoteError, match=r"TLS verification of https://127\.0\.0\.1:\d+ failed"),
        ):
            client.list_services()
        with _client(fake, verify=str(cert_file)) as client:  # trusting that certificate works
            assert client.list_services() == []
