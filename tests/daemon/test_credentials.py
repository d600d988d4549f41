"""Credentials that last: the daemon refreshes its own access token (issue 12, item 1).

A loopback OIDC issuer hands out short-lived JWT access tokens from a refresh token (rotated at every
grant, as Keycloak can); the REAL local IM sits behind a loopback proxy that answers 401 to any expired or
unknown token. The daemon is wired as ``daemon run --config`` wires it (``open_daemon`` + ``serve``).

Lifetimes are a parameter: the fast variant uses 5 s tokens (refresh-ahead margin 1.7 s, room for a loaded
machine); the ``slow`` one is faithful to the issue (60 s tokens over five lifetimes, about five minutes).
"""

from __future__ import annotations

import json
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deployer.adapters.clouds.tokens import NoValidToken
from deployer.adapters.im.auth import AuthEntry, load_auth_file, write_auth_file
from deployer.adapters.im.client import IM_AUTH_TYPE, IMClient
from deployer.cli.app import app
from deployer.daemon.config import read_daemon_file
from deployer.daemon.credentials import ACCESS_TOKEN_PLACEHOLDER, DaemonCredentials, TokenSource
from deployer.daemon.reconciler import Reconciler
from deployer.daemon.runner import DaemonSources, open_daemon, serve
from deployer.errors import AuthError, RemoteError, UserError
from deployer.paths import resolve_paths
from tests.clouds.conftest import make_jwt
from tests.clouds.oidc_issuer import OIDCIssuer
from tests.clouds.token_proxy import ExpiringTokenIMProxy
from tests.daemon.conftest import IMCluster, pending_count, wait_for, worker_vms, write_kubeconfig
from tests.fixtures.im_server import IMUser, RunningIM
from tests.fixtures.kube_api import FakeKubeAPI

pytestmark = pytest.mark.im

# Rounds every second, so the IM is read all the time; idle nodes stay (this test is about scaling up).
SPEC_CONFIG = {
    "elasticity": {"idle_time": 3600, "resync_period": 1, "batch_idle": 0.2, "batch_max": 1},
    "worker_groups": [{"name": "wn", "min": 0, "max": 4, "initial": 0}],  # as in im_cluster
}
CLIENT_ID = "deployer"


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def issuer_factory() -> Iterator[Callable[..., OIDCIssuer]]:
    started: list[OIDCIssuer] = []

    def make(lifetime: float, *, rotate: bool = False) -> OIDCIssuer:
        started.append(OIDCIssuer(lifetime, rotate=rotate, client_id=CLIENT_ID).start())
        return started[-1]

    yield make
    for issuer in started:
        issuer.stop()


@contextmanager
def _proxy(local_im: RunningIM, issuer: OIDCIssuer, im_user: IMUser) -> Iterator[ExpiringTokenIMProxy]:
    im_line = next(e for e in im_user.entries if e.type == IM_AUTH_TYPE)
    proxy = ExpiringTokenIMProxy(local_im.url, issuer, im_line).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _auth_file(tmp_path: Path, im_user: IMUser) -> Path:
    """What `daemon install` ships: the IM line takes the access token, the cloud lines stay as they are."""
    path = tmp_path / "front" / "auth.dat"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    lines = [AuthEntry(IM_AUTH_TYPE, None, {"token": ACCESS_TOKEN_PLACEHOLDER})]
    write_auth_file(path, lines + [e for e in im_user.entries if e.type != IM_AUTH_TYPE])
    return path


def _refresh_source(tmp_path: Path, issuer: OIDCIssuer) -> TokenSource:
    path = tmp_path / "front" / "refresh_token"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(issuer.refresh_token + "\n")
    path.chmod(0o600)
    return TokenSource(
        source="refresh_token", refresh_token_file=path, issuer=issuer.issuer, client_id=CLIENT_ID
    )


@dataclass
class Rig:
    """The parts of a daemon test: the fake Kubernetes API, the real IM with an infrastructure, an issuer."""

    home: Path  # DEPLOYER_HOME
    tmp_path: Path
    kube_api: FakeKubeAPI
    local_im: RunningIM
    im_user: IMUser
    im_cluster: IMCluster
    issuer_factory: Callable[..., OIDCIssuer]

    def sources(self, proxy: ExpiringTokenIMProxy, source: TokenSource) -> DaemonSources:
        return DaemonSources(
            cluster="c1",
            spec_config=SPEC_CONFIG,
            im_url=proxy.url,
            auth_file=_auth_file(self.tmp_path, self.im_user),
            infra_id=self.im_cluster.infra_id,
            token_source=source,
            drain_timeout=5,
        )


@pytest.fixture
def rig(
    deployer_home: Path,
    tmp_path: Path,
    kube_api: FakeKubeAPI,
    local_im: RunningIM,
    im_user: IMUser,
    im_cluster: IMCluster,
    issuer_factory: Callable[..., OIDCIssuer],
) -> Rig:
    return Rig(deployer_home, tmp_path, kube_api, local_im, im_user, im_cluster, issuer_factory)


@contextmanager
def _serving(sources: DaemonSources, kube_api: FakeKubeAPI) -> Iterator[Reconciler]:
    """The long-running daemon (loop, refresher thread) in a thread, stopped and joined at the end."""
    with open_daemon(resolve_paths(), sources, api_client=kube_api.api_client()) as (
        reconciler,
        kube,
        resolved,
    ):
        stop = threading.Event()
        thread = threading.Thread(target=serve, args=(reconciler, kube, resolved, stop), daemon=True)
        thread.start()
        try:
            yield reconciler
            assert thread.is_alive(), "the daemon loop died"
        finally:
            stop.set()
            thread.join(20)
        assert not thread.is_alive()


@pytest.mark.parametrize(
    "lifetime",
    [5.0, pytest.param(60.0, marks=[pytest.mark.slow, pytest.mark.timeout(600)], id="issue-60s")],
)
def test_the_daemon_keeps_scaling_across_five_token_lifetimes(
    lifetime: float,
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG", logger="deployer")
    issuer = rig.issuer_factory(lifetime, rotate=True)
    source = _refresh_source(rig.tmp_path, issuer)
    with (
        _proxy(rig.local_im, issuer, rig.im_user) as proxy,
        _serving(rig.sources(proxy, source), rig.kube_api) as reconciler,
    ):
        start = time.time()
        # One scale-up every 1.7 lifetimes: the fourth comes after five lifetimes have gone by.
        for k in range(4):
            time.sleep(max(0.0, start + k * 1.7 * lifetime - time.time()))
            rig.kube_api.add_pod(f"work-{k}", cpu="1500m", memory="512Mi", unschedulable=True)
            _until(lambda k=k: len(worker_vms(rig.im_cluster)) == k + 1, 60 + lifetime, f"scale-up {k + 1}")
        end = time.time()
        metrics = reconciler.metrics
        assert metrics.value("deployer_token_expiry_seconds") > 0

    assert end - start > 5 * lifetime
    assert proxy.refused() == []  # never an expired (or unknown) token at the IM
    assert [r for r in proxy.requests if r.status >= 400] == []
    forwarded = [u for u in proxy.uses if u.refused is None]
    for window in range(5):  # the IM was used, successfully, in each of the five lifetimes
        low, high = start + window * lifetime, start + (window + 1) * lifetime
        assert any(low <= u.at < high for u in forwarded), f"no IM call during lifetime {window + 1}"
    assert len({u.token for u in forwarded}) >= 5
    assert all(u.expires is not None and u.expires > u.at for u in forwarded)
    # Refreshed ahead: every token was replaced before it expired, so there was never a gap.
    expiries = sorted(issuer.issued.values())
    assert all(later - lifetime < earlier for earlier, later in pairwise(expiries))
    assert metrics.value("deployer_token_refresh_failures_total") == 0
    assert metrics.value("deployer_token_refreshes_total") >= 5
    assert metrics.value("deployer_reconcile_errors_total", error="NoValidToken") == 0
    assert metrics.value("deployer_reconcile_errors_total", error="AuthError") == 0
    # The issuer rotated the refresh token at every grant: the file holds the live one, still 0600.
    assert source.refresh_token_file is not None
    assert source.refresh_token_file.read_text().strip() == issuer.refresh_token
    assert stat.S_IMODE(source.refresh_token_file.stat().st_mode) == 0o600
    # No token in the logs or under DEPLOYER_HOME.
    secrets = [*issuer.issued, issuer.refresh_token]
    assert not [s for s in secrets if s in caplog.text]
    for path in rig.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path


def test_an_im_401_triggers_one_refresh_and_one_retry(
    rig: Rig,
) -> None:
    issuer = rig.issuer_factory(600)
    with _proxy(rig.local_im, issuer, rig.im_user) as proxy:
        sources = rig.sources(proxy, _refresh_source(rig.tmp_path, issuer))
        paths = resolve_paths()
        with open_daemon(paths, sources, api_client=rig.kube_api.api_client()) as (reconciler, kube, _):
            assert reconciler.run_once(time.time()).errors == []
            assert len(issuer.issued) == 1
            rig.kube_api.add_pod("work-0", cpu="1500m", unschedulable=True)
            wait_for(kube, lambda s: pending_count(s) == 1)
            proxy.refuse_next = 1  # the IM refuses a token that has not expired (revoked, clock skew)
            up = reconciler.run_once(time.time())
            assert up.errors == [] and len(worker_vms(rig.im_cluster)) == 1
            assert len(issuer.issued) == 2 and len(proxy.refused("revoked token")) == 1

            # An IM that refuses every token: one renewal and one retry per request, then a clear error.
            proxy.refuse_next = 1000
            uses, grants = len(proxy.uses), len(issuer.issued)
            with pytest.raises(AuthError, match="401"):
                reconciler.run_once(time.time())
            assert (len(proxy.uses) - uses, len(issuer.issued) - grants) == (2, 1)


def test_token_endpoint_down_backs_off_sends_no_expired_token_and_explain_says_why(
    rig: Rig,
) -> None:
    issuer = rig.issuer_factory(4.0)
    source = _refresh_source(rig.tmp_path, issuer)
    with _proxy(rig.local_im, issuer, rig.im_user) as proxy:
        sources = rig.sources(proxy, source)
        with _serving(sources, rig.kube_api) as reconciler:
            _until(lambda: any(u.refused is None for u in proxy.uses), 30, "a first IM call")
            issuer.mode = "down"
            down_at = time.time()
            last_expiry = max(issuer.issued.values())
            time.sleep(max(0.0, last_expiry - time.time()) + 4)
            attempts = [t for t in issuer.attempts if t >= down_at]
            assert proxy.refused() == []
            assert all(u.at < last_expiry for u in proxy.uses)  # nothing reached the IM after expiry
            # Bounded back-off (1, 2, 4 s ...), not a refresh per IM call or per round.
            assert 1 <= len(attempts) <= 6
            metrics = reconciler.metrics
            _until(lambda: metrics.value("deployer_token_expiry_seconds") < 0, 10, "the expiry metric")
            assert metrics.value("deployer_token_refresh_failures_total") >= 1
            assert reconciler.metrics.value("deployer_reconcile_errors_total", error="NoValidToken") >= 1

            # `daemon explain` (another process on the same front end) shows the token and the error.
            config = _config_file(rig.tmp_path, sources, source, rig.kube_api)
            result = CliRunner().invoke(app, ["daemon", "explain", "c1", "--config", str(config), "--json"])
            assert result.exit_code == 3, result.output
            shown = json.loads(result.stdout)
            assert shown["credentials"]["source"] == f"refresh token at {issuer.issuer}"
            assert "cannot reach the token endpoint" in shown["credentials"]["last_error"]
            assert "cannot reach the token endpoint" in shown["error"]
            words = CliRunner().invoke(app, ["daemon", "explain", "c1", "--config", str(config)])
            assert words.exit_code == 3
            assert (
                f"credentials: access token from refresh token at {issuer.issuer}; no token obtained yet; last refresh failed"
                in (words.stderr)
            )

            issuer.mode = "ok"  # the endpoint is back: the daemon recovers on its own
            rig.kube_api.add_pod("work-0", cpu="1500m", unschedulable=True)
            _until(
                lambda: len(worker_vms(rig.im_cluster)) == 1, 90, "a scale-up after the endpoint came back"
            )
            assert reconciler.metrics.value("deployer_token_expiry_seconds") > 0
        words = CliRunner().invoke(app, ["daemon", "explain", "c1", "--config", str(config)])
        assert words.exit_code == 0, words.output
        assert f"credentials: access token from refresh token at {issuer.issuer}; expires in" in words.stderr
    assert proxy.refused() == []


def test_a_revoked_refresh_token_stops_scaling_with_a_clear_error_not_a_crash(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = rig.issuer_factory(4.0)
    with _proxy(rig.local_im, issuer, rig.im_user) as proxy:
        with _serving(rig.sources(proxy, _refresh_source(rig.tmp_path, issuer)), rig.kube_api) as reconciler:
            _until(lambda: any(u.refused is None for u in proxy.uses), 30, "a first IM call")
            issuer.revoke_all()  # the user logged out everywhere, or the offline token was revoked
            time.sleep(max(0.0, max(issuer.issued.values()) - time.time()))  # the last token runs out
            rig.kube_api.add_pod("work-0", cpu="1500m", unschedulable=True)
            time.sleep(3)
            errors = reconciler.metrics.value("deployer_reconcile_errors_total", error="NoValidToken")
        assert errors >= 1  # rounds go on (the loop survived), each one skipped before the IM
    assert proxy.refused() == [] and worker_vms(rig.im_cluster) == []
    assert "the token endpoint refused the refresh token: Token is not active" in caplog.text


def _config_file(tmp_path: Path, sources: DaemonSources, source: TokenSource, kube_api: FakeKubeAPI) -> Path:
    """The daemon config as the elastic_daemon role writes it on the front end."""
    path = tmp_path / "front" / "daemon.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "cluster": sources.cluster,
                "credentials_file": str(sources.auth_file),
                "token": source.as_mapping(),
                "settings": {
                    "im_url": sources.im_url,
                    "infrastructure_id": sources.infra_id,
                    "kubeconfig": str(write_kubeconfig(tmp_path, kube_api.url)),
                    "spec": SPEC_CONFIG,
                },
            }
        )
    )
    assert read_daemon_file(path).token == source
    return path


@pytest.mark.parametrize(
    ("fault", "error", "message"),
    [
        ("down", RemoteError, "cannot reach the token endpoint"),
        ("html", RemoteError, "HTTP 200 without an access_token (text/html)"),
        ("garbage", RemoteError, "HTTP 200 without an access_token (application/json)"),
        ("500", RemoteError, "the token endpoint answered HTTP 500"),
        ("revoked", AuthError, "refused the refresh token: Token is not active"),
    ],
)
def test_a_faulty_token_endpoint_gives_a_clear_error_and_backs_off(
    fault: str,
    error: type[Exception],
    message: str,
    tmp_path: Path,
    im_user: IMUser,
    issuer_factory: Callable[..., OIDCIssuer],
) -> None:
    issuer = issuer_factory(60)
    credentials = DaemonCredentials(_auth_file(tmp_path, im_user), _refresh_source(tmp_path, issuer))
    if fault == "revoked":
        issuer.revoke_all()
    else:
        issuer.mode = fault
    with pytest.raises(error, match=re.escape(message)) as raised:
        credentials.entries()
    status = credentials.status()
    assert message in (status.last_error or "") and status.consecutive_failures == 1
    assert status.next_attempt_at is not None and status.expires_at is None
    # Backing off: the next call makes no request and says why.
    attempts = len(issuer.attempts)
    with pytest.raises(NoValidToken, match="next try in"):
        credentials.entries()
    assert len(issuer.attempts) == attempts
    assert str(raised.value).count("\n") == 0 and "rt-" not in str(raised.value)  # one line, no secret


def test_a_token_file_rotated_by_something_else(
    tmp_path: Path,
    local_im: RunningIM,
    im_user: IMUser,
    im_cluster: IMCluster,
    issuer_factory: Callable[..., OIDCIssuer],
) -> None:
    issuer = issuer_factory(2.0)

    def mint() -> str:
        status, body = issuer.grant(
            {"grant_type": "refresh_token", "client_id": CLIENT_ID, "refresh_token": issuer.refresh_token}
        )
        assert status == 200
        return str(body["access_token"])

    token_file = tmp_path / "access-token"
    token_file.write_text(mint())
    source = TokenSource(source="token_file", token_file=token_file)
    credentials = DaemonCredentials(_auth_file(tmp_path, im_user), source)
    with (
        _proxy(local_im, issuer, im_user) as proxy,
        IMClient(proxy.url, (), credentials=credentials) as client,
    ):
        assert client.vm_ids(im_cluster.infra_id) == ["0"]
        rotated = mint()
        token_file.write_text(rotated + "\n")  # the rotator's next run
        assert client.vm_ids(im_cluster.infra_id) == ["0"]
        assert proxy.uses[-1].token == rotated and proxy.refused() == []
        time.sleep(max(0.0, issuer.issued[rotated] - time.time()) + 0.2)  # then it stops rotating
        uses = len(proxy.uses)
        with pytest.raises(NoValidToken, match=r"token file .* expired"):
            client.vm_ids(im_cluster.infra_id)
        assert len(proxy.uses) == uses  # the IM was not asked with the expired token
    assert credentials.status().last_error is not None


def test_the_token_section_of_the_config_file(tmp_path: Path, im_user: IMUser) -> None:
    config = tmp_path / "daemon.yaml"

    def read(token: object) -> object:
        config.write_text(yaml.safe_dump({"cluster": "c", "token": token, "settings": {}}))
        return read_daemon_file(config).token

    assert read({"source": "oidc_agent", "oidc_agent_account": "egi"}) == TokenSource(
        source="oidc_agent", oidc_agent_account="egi"
    )
    for token, said in [
        ({"source": "magic"}, "token.source must be one of refresh_token, oidc_agent, token_file"),
        ({"source": "refresh_token", "refresh_token_file": "/x"}, "needs token.client_id"),
        ({"source": "refresh_token", "refresh_token_file": "/x", "client_id": "c"}, "needs token.issuer"),
        ({"source": "token_file", "token_file_path": "/x"}, "token.token_file_path is unknown"),
        ("refresh", "'token' must be a mapping"),
    ]:
        with pytest.raises(UserError, match=said) as raised:
            read(token)
        assert str(raised.value).startswith(str(config))
    # A token source needs an auth file with a line that takes the token.
    plain = tmp_path / "plain.dat"
    write_auth_file(plain, im_user.entries)
    with pytest.raises(UserError, match="no line takes an access token"):
        DaemonCredentials(plain, TokenSource(source="token_file", token_file=tmp_path / "t"))
    assert load_auth_file(_auth_file(tmp_path, im_user))[0].fields == {"token": ACCESS_TOKEN_PLACEHOLDER}


def test_an_oidc_agent_on_the_front_end(
    tmp_path: Path, im_user: IMUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`oidc-token` of oidc-agent, asked for a token that outlives the refresh margin."""
    agent_token = make_jwt({"sub": "agent", "iat": time.time(), "exp": time.time() + 900})
    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    script = bindir / "oidc-token"
    script.write_text(f'#!/bin/sh\necho "$@" > {asked}\necho {agent_token}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    credentials = DaemonCredentials(
        _auth_file(tmp_path, im_user), TokenSource(source="oidc_agent", oidc_agent_account="egi")
    )
    (im_line, *_) = credentials.entries()
    assert im_line.fields == {"token": agent_token}
    assert asked.read_text().split() == ["--time=300", "egi"]
    assert credentials.status().source == "oidc-agent account egi"
