"""The dashboard as an ASGI app (Starlette): server-rendered pages, a few form actions, nothing external.

Started by ``deployer ui`` (``deployer.ui.server``). Security, all here:

- every page carries a strict Content-Security-Policy (own scripts, styles and images only; no inline
  code, no framing) and ``Cache-Control: no-store``; every asset is shipped in the package, so the page
  works offline;
- every POST must carry the process's CSRF token (form field or ``X-CSRF-Token`` header), and a
  cross-origin ``Origin`` is refused on top of it;
- with an access token (required off loopback), every page but the login form needs the session cookie
  (HttpOnly, SameSite=Strict) that the token buys; on loopback without a token, only loopback ``Host``
  names are served, so a DNS-rebinding page cannot talk to it;
- secret outputs reach the HTML masked; the reveal button fetches one value on click.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployer.errors import DeployerError, NotFoundError, UserError
from deployer.paths import Paths
from deployer.ui import actions, charts, views
from deployer.ui.live import read_live
from deployer.ui.simresults import SimResults, parse_results, parse_run

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SESSION_COOKIE = "deployer_ui_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
ELASTICITY_REFRESH_S = 15
_NOTES_KEPT = 200
_PLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$")
_STATIC = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class UISettings:
    paths: Paths
    token: str | None = None  # required off loopback; None on loopback means no login
    results_file: Path | None = None  # the simulator comparison (bench/results.md)
    # Loopback-only: the Host header must name loopback (or this address), so a DNS-rebinding page
    # cannot reach the dashboard. None: the dashboard listens beyond loopback (with a token).
    loopback_host: str | None = "127.0.0.1"
    daemon_metrics: Mapping[str, str] = field(default_factory=dict)  # cluster -> a daemon's /metrics URL
    im_timeout: float = views.DEFAULT_READ_TIMEOUT  # seconds a page waits for the IM's answer


class _SecurityHeaders:
    """Adds the CSP and friends to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cache-control", b"no-store"),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class Dashboard:
    """The routes and their state: settings, the CSRF token, the session key and pending notes."""

    def __init__(self, settings: UISettings) -> None:
        self.settings = settings
        self.csrf_token = secrets.token_urlsafe(32)
        self._session_key = secrets.token_urlsafe(32)
        self._notes: OrderedDict[str, tuple[str, str]] = OrderedDict()
        env = Environment(loader=PackageLoader("deployer.ui", "templates"), autoescape=select_autoescape())
        env.globals["csrf_field"] = CSRF_FIELD
        env.filters["clock"] = _clock
        self.templates = Jinja2Templates(env=env)

    # ---- plumbing ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [
            Route("/", self.deployments_page),
            Route("/login", self.login_page, methods=["GET", "POST"]),
            Route("/deployments/{name}", self.deployment_page),
            Route("/deployments/{name}/elasticity", self.elasticity_page),
            Route("/deployments/{name}/outputs/{key}/reveal", self.reveal, methods=["POST"]),
            Route("/deployments/{name}/scale", self.scale, methods=["POST"]),
            Route("/deployments/{name}/destroy", self.destroy, methods=["POST"]),
            Route("/deployments/{name}/edge", self.add_edge, methods=["POST"]),
            Route("/simulator", self.simulator_page),
            Route("/simulator/plots/{file}", self.simulator_plot),
            Route("/classes", self.classes_page),
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),
        ]
        bound = self.settings.loopback_host
        hosts = [*LOOPBACK_HOSTS, bound] if bound is not None else ["*"]
        return Starlette(
            routes=routes,
            middleware=[
                Middleware(_SecurityHeaders),
                Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
                Middleware(_LoginGate, dashboard=self),
            ],
        )

    def signed_in(self, request: Request) -> bool:
        if self.settings.token is None:
            return True
        return _same(request.cookies.get(SESSION_COOKIE, ""), self._session_key)

    def _render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        note = self._notes.pop(request.query_params.get("note", ""), None)
        context.update(
            csrf_token=self.csrf_token,
            note=note,
            classes_enabled=bool(views.class_roster(self.settings.paths)),
        )
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def _redirect(self, path: str, kind: str, text: str) -> RedirectResponse:
        """Post/redirect/get with a one-time note (kept server-side: a link cannot forge one)."""
        note_id = secrets.token_urlsafe(9)
        self._notes[note_id] = (kind, text)
        while len(self._notes) > _NOTES_KEPT:
            self._notes.popitem(last=False)
        return RedirectResponse(f"{path}?note={note_id}", status_code=303)

    async def _form(self, request: Request) -> dict[str, str]:
        """The POSTed form, once the CSRF token and the origin are checked (403 otherwise)."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            raise _Forbidden("cross-origin request refused")
        form = await request.form()
        sent = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD) or "")
        if not _same(sent, self.csrf_token):
            raise _Forbidden("missing or wrong CSRF token; reload the page and try again")
        return {key: str(value) for key, value in form.items() if isinstance(value, str)}

    async def _act(
        self, request: Request, back: str, action: Callable[[dict[str, str]], str], done: str | None = None
    ) -> Response:
        """Run one action in a worker thread; its outcome (or its one-line error) becomes a note."""
        try:
            form = await self._form(request)
        except _Forbidden as err:
            return PlainTextResponse(str(err), status_code=403)
        try:
            message = await run_in_threadpool(action, form)
        except DeployerError as err:
            return self._redirect(back, "error", str(err))
        return self._redirect(done or back, "ok", message)

    # ---- pages ------------------------------------------------------------------------------------

    async def deployments_page(self, request: Request) -> Response:
        records = await run_in_threadpool(views.deployments, self.settings.paths)
        return self._render(request, "deployments.html", records=records)

    async def deployment_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            view = await run_in_threadpool(
                views.deployment, self.settings.paths, name, read_timeout=self.settings.im_timeout
            )
        except NotFoundError as err:
            return self._render(request, "missing.html", status=404, message=str(err))
        return self._render(request, "deployment.html", view=view)

    async def elasticity_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            view = await run_in_threadpool(views.elasticity, self.settings.paths, name)
        except NotFoundError as err:
            return self._render(request, "missing.html", status=404, message=str(err))
        series = [("pending pods", [(s.at, float(s.pending_pods)) for s in view.samples])]
        series += [
            (f"{group} nodes", [(s.at, float(views.active_nodes(s, group))) for s in view.samples])
            for group in view.groups
        ]
        url = self.settings.daemon_metrics.get(name)
        live = await run_in_threadpool(read_live, url) if url else None
        return self._render(
            request,
            "elasticity.html",
            view=view,
            live=live,
            chart=charts.line_chart(series),
            refresh=ELASTICITY_REFRESH_S,
        )

    async def simulator_page(self, request: Request) -> Response:
        path = self.settings.results_file
        results, problem = None, None
        if path is not None and path.is_file():
            try:
                results = _read_results(path)
            except UserError as err:
                problem = str(err)
        return self._render(request, "simulator.html", results=results, source=path, problem=problem)

    async def simulator_plot(self, request: Request) -> Response:
        name = request.path_params["file"]
        path = self.settings.results_file
        if path is None or not _PLOT_NAME.match(name):
            return PlainTextResponse("not found", status_code=404)
        plot = _plots_dir(path) / name
        if not plot.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(plot, media_type="image/png")

    async def classes_page(self, request: Request) -> Response:
        roster = views.class_roster(self.settings.paths)
        return self._render(request, "classes.html", roster=roster)

    async def login_page(self, request: Request) -> Response:
        if self.settings.token is None:
            return RedirectResponse("/", status_code=303)
        if request.method == "GET":
            return self._render(request, "login.html")
        try:
            form = await self._form(request)
        except _Forbidden as err:
            return PlainTextResponse(str(err), status_code=403)
        if not _same(form.get("token", ""), self.settings.token):
            return self._render(request, "login.html", status=401, error="wrong access token")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, self._session_key, httponly=True, samesite="strict", path="/")
        return response

    # ---- actions ----------------------------------------------------------------------------------

    async def reveal(self, request: Request) -> Response:
        name, key = request.path_params["name"], request.path_params["key"]
        try:
            await self._form(request)
            value = await run_in_threadpool(
                views.reveal_output, self.settings.paths, name, key, read_timeout=self.settings.im_timeout
            )
        except _Forbidden as err:
            return JSONResponse({"error": str(err)}, status_code=403)
        except DeployerError as err:
            return JSONResponse(
                {"error": str(err)}, status_code=404 if isinstance(err, NotFoundError) else 502
            )
        return JSONResponse({"value": value})

    async def scale(self, request: Request) -> Response:
        name = request.path_params["name"]

        def run(form: dict[str, str]) -> str:
            group = form.get("group", "")
            try:
                count = int(form.get("count", ""))
            except ValueError:
                raise UserError(f"VMs in group {group}: enter a whole number") from None
            return actions.scale(self.settings.paths, name, group, count)

        return await self._act(request, _deployment_path(name), run)

    async def destroy(self, request: Request) -> Response:
        name = request.path_params["name"]
        return await self._act(
            request,
            _deployment_path(name),
            lambda form: actions.destroy(self.settings.paths, name, form.get("confirm", "")),
            done="/",
        )

    async def add_edge(self, request: Request) -> Response:
        name = request.path_params["name"]

        def run(form: dict[str, str]) -> str:
            host = form.get("host", "").strip()
            if not host:
                raise UserError("edge host: enter the board's address or SSH host name")
            return actions.add_edge_host(
                self.settings.paths,
                name,
                host,
                user=form.get("user", "").strip() or "pi",
                group=form.get("group", "").strip() or "edge",
                key_file=form.get("key", "").strip() or None,
                front=form.get("front", "").strip() or None,
                front_user=form.get("front_user", "").strip() or "root",
            )

        return await self._act(request, _deployment_path(name), run)


class _Forbidden(Exception):
    pass


class _LoginGate:
    """With an access token, everything but the login form and the static files needs the session."""

    def __init__(self, app: ASGIApp, dashboard: Dashboard) -> None:
        self.app = app
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == "/login" or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.dashboard.signed_in(request):
            await self.app(scope, receive, send)
            return
        response: Response
        if request.method == "GET":
            response = RedirectResponse("/login", status_code=303)
        else:
            response = PlainTextResponse("sign in first", status_code=401)
        await response(scope, receive, send)


def _same(sent: str, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII text."""
    return hmac.compare_digest(sent.encode(), expected.encode())


def _plots_dir(results: Path) -> Path:
    """bench/results.md links plots/NAME.png; a simulate run's --plot file sits next to its JSON."""
    return results.parent if results.suffix == ".json" else results.parent / "plots"


def _read_results(path: Path) -> SimResults:
    if path.suffix != ".json":
        return parse_results(path.read_text())
    plot = path.with_suffix(".png")
    return parse_run(path.read_text(), path.stem, plot.name if plot.is_file() else None)


def _clock(stamp: float | None) -> str:
    return "-" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _deployment_path(name: str) -> str:
    return f"/deployments/{quote(name, safe='')}"


def create_app(settings: UISettings) -> Starlette:
    return Dashboard(settings).app()
