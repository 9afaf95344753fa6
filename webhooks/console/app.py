"""The console's routes under /console: the login, the sandbox pages, the operations pages, and its static files.

``install`` adds them to the bot's FastAPI app. The pages read through ``bot`` services and act by sending
the same requests the outside world sends (a signed Slack request to /slack/events, an alert to /alerts/*, a
report to /reports, a Jira change through the Jira emulator, which sends its webhook): the console decides
nothing itself.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bot.runtime import Runtime
from webhooks.console import operations, sandbox
from webhooks.console.security import NAME_LIMIT, new_session
from webhooks.console.web import HERE, Console, ConsoleRefusal, Emulators, NeedsLogin

LOGIN_DELAY = 0.5  # seconds, after a wrong token: guessing is slow


def install(app: FastAPI, runtime: Runtime, emulators: Emulators) -> Console:
    console = Console(runtime, emulators)
    router = APIRouter(prefix="/console", include_in_schema=False)

    @app.exception_handler(ConsoleRefusal)
    async def _refused(request: Request, exc: ConsoleRefusal) -> Response:
        visit = console.visit(request, login=False) if console.settings.console_enabled else None
        if visit is None:
            return HTMLResponse("<!doctype html><title>Not found</title><p>Not found.</p>", status_code=404)
        return console.page(visit, "error.html", title="Refused", section="", status=exc.status, detail=exc.detail)

    @app.exception_handler(NeedsLogin)
    async def _login_first(request: Request, exc: NeedsLogin) -> Response:
        visit = console.visit(request, login=False)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.headers.get("x-console-live"):
            return console.finish(visit, Response(status_code=401))
        query = urllib.parse.urlencode({"next": path})
        return console.finish(visit, RedirectResponse(f"/console/login?{query}", status_code=303))

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        """The console, where it is on; otherwise nothing is here."""
        if not console.settings.console_enabled:
            raise ConsoleRefusal(404, "not found")
        return RedirectResponse("/console/", status_code=307)

    @router.get("/")
    async def home(request: Request) -> Response:
        visit = console.visit(request)
        return console.back(visit, "/console/sandbox/slack" if emulators.slack else "/console/tickets")

    @router.get("/login")
    async def login_page(request: Request, next: str = "/console/") -> Response:
        visit = console.visit(request, login=False)
        if not console.settings.console_login:
            return console.back(visit, "/console/")
        return console.page(visit, "login.html", title="Log in", section="", next=_local(next), failed=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        visit, form = await console.form(request, login=False)
        target = _local(form.get("next", "/console/"))
        if not console.settings.console_login:
            return console.back(visit, "/console/")
        if not console.keys.token_matches(form.get("token", "")):
            await asyncio.sleep(LOGIN_DELAY)
            page = console.page(visit, "login.html", title="Log in", section="", next=target, failed=True, status=401)
            return page
        who = " ".join(form.get("name", "").split())[:NAME_LIMIT] or "console"
        visit.session, visit.fresh = new_session(who), True  # a new id: the anonymous one's CSRF token ends here
        return console.finish(visit, RedirectResponse(target, status_code=303))

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        visit, _ = await console.form(request, login=False)
        visit.session, visit.fresh = new_session(None), True
        return console.finish(visit, RedirectResponse("/console/login", status_code=303))

    sandbox.register(router, console)
    operations.register(router, console)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    return console


def _local(path: str) -> str:
    """Only a path of the console itself, never another site (no open redirect)."""
    return path if path.startswith("/console/") and not path.startswith("//") and "\\" not in path else "/console/"
