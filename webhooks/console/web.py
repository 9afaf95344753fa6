"""The console's plumbing: who is asking (session, CSRF), rendering a page and its live regions, reading a form,
and talking to this very server the way the outside world does (Slack, Alertmanager, a customer's app)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from markupsafe import Markup

from bot.runtime import Runtime
from webhooks.console import markup
from webhooks.console.security import SECURITY_HEADERS, ConsoleSession, Keys, session_of
from webhooks.intake import read_body

if TYPE_CHECKING:
    from bot.sandbox.identity_emulator import IdentityEmulator
    from bot.sandbox.jira_emulator import JiraEmulator
    from bot.sandbox.mail_catcher import MailCatcher
    from bot.sandbox.slack_emulator import SlackEmulator

HERE = Path(__file__).parent
FORM_LIMIT = 256 * 1024
LIVE_HEADER = "x-console-live"


@dataclass
class Emulators:
    """The sandbox's outside systems, where they run inside this process (None: the real one, or none)."""

    slack: SlackEmulator | None = None
    jira: JiraEmulator | None = None
    mail: MailCatcher | None = None
    identity: IdentityEmulator | None = None

    @property
    def any(self) -> bool:
        return any((self.slack, self.jira, self.mail, self.identity))


class ConsoleRefusal(Exception):
    """Answered as a page saying ``detail``, with ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Visit:
    """One request to the console: its session (set on the answer when new) and what it may do."""

    request: Request
    session: ConsoleSession
    fresh: bool
    csrf: str

    @property
    def who(self) -> str:
        return self.session.who or "sandbox console"


def _ago(moment: datetime | str | float | None, now: datetime | None = None) -> str:
    if moment is None or moment == "":
        return ""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    elif isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00").replace("+0000", "+00:00"))
        except ValueError:
            return str(moment)
    assert isinstance(moment, datetime)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    return duration(seconds) + " ago" if seconds >= 1 else "just now"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _when(moment: datetime | str | float | None) -> str:
    if moment is None or moment == "":
        return ""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(mrkdwn=markup.mrkdwn, jira=markup.jira, plain=markup.plain, ago=_ago, when=_when)
    env.filters.update(duration=duration, link=markup.link, tojson_pretty=lambda v: json.dumps(v, indent=2))
    return env


class Console:
    """What every console page shares: the runtime, the emulators, the keys, the templates."""

    def __init__(self, runtime: Runtime, emulators: Emulators) -> None:
        self.runtime, self.emulators = runtime, emulators
        self.settings = runtime.settings
        self.keys = Keys(runtime.settings)
        self.templates = _environment()
        self.flashes: dict[str, list[str]] = {}  # per session: what the last action did, shown once

    # ---- who is asking ---------------------------------------------------------------------------------------
    def visit(self, request: Request, *, login: bool = True) -> Visit:
        """The request's visit; refused (404) when the console is off, sent to the login page when one is needed."""
        if not self.settings.console_enabled:
            raise ConsoleRefusal(404, "not found")
        session, fresh = session_of(request, self.keys)
        if login and self.settings.console_login and not session.logged_in:
            raise NeedsLogin()
        return Visit(request, session, fresh, self.keys.csrf(session))

    async def form(self, request: Request, *, login: bool = True) -> tuple[Visit, dict[str, str]]:
        """A POSTed form, with its CSRF token checked: a forged or missing one changes nothing (403)."""
        visit = self.visit(request, login=False)
        if login and self.settings.console_login and not visit.session.logged_in:
            raise ConsoleRefusal(401, "Log in first: this console needs TRIAGE_CONSOLE_TOKEN.")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise ConsoleRefusal(415, "Send the form as application/x-www-form-urlencoded.")
        raw = await read_body(request, max(FORM_LIMIT, self.settings.max_body_bytes))
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
        except (UnicodeDecodeError, ValueError):
            raise ConsoleRefusal(400, "The form could not be read.") from None
        fields = dict(pairs)
        if visit.fresh or not self.keys.csrf_matches(visit.session, fields.get("csrf")):
            raise ConsoleRefusal(403, "The form's CSRF token is missing or wrong: reload the page and try again.")
        return visit, fields

    def flash(self, visit: Visit, message: str) -> None:
        said = self.flashes.setdefault(visit.session.sid, [])
        said.append(message)
        del said[:-5]
        if len(self.flashes) > 1000:  # abandoned sessions
            self.flashes.pop(next(iter(self.flashes)))

    # ---- answers ---------------------------------------------------------------------------------------------
    def page(
        self,
        visit: Visit,
        template: str,
        *,
        title: str,
        section: str,
        regions: Mapping[str, str] | None = None,
        status: int = 200,
        **values: Any,
    ) -> Response:
        """The page, or for a live request (``X-Console-Live``) its regions alone: {name: {digest, html}}."""
        context = self.context(visit, title=title, section=section, **values)
        rendered = {
            name: self.templates.get_template(partial).render(context) for name, partial in (regions or {}).items()
        }
        live = {
            name: {"digest": hashlib.sha256(html.encode()).hexdigest()[:16], "html": html}
            for name, html in rendered.items()
        }
        if visit.request.headers.get(LIVE_HEADER):
            return self.finish(visit, JSONResponse({"regions": live}))
        # Rendered just above by the autoescaping templates.
        context["regions"] = {name: Markup(item["html"]) for name, item in live.items()}  # noqa: S704
        context["digests"] = {name: item["digest"] for name, item in live.items()}
        html = self.templates.get_template(template).render(context)
        return self.finish(visit, HTMLResponse(html, status_code=status))

    def context(self, visit: Visit, **values: Any) -> dict[str, Any]:
        flashes = self.flashes.pop(visit.session.sid, []) if not visit.request.headers.get(LIVE_HEADER) else []
        return {
            "csrf": visit.csrf,
            "who": visit.session.who,
            "login": self.settings.console_login,
            "sandbox": self.emulators,
            "flashes": flashes,
            "now": datetime.now(UTC),
            **values,
        }

    def finish(self, visit: Visit, response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        if visit.fresh:
            self.keys.set_cookie(response, visit.session)
        return response

    def back(self, visit: Visit, path: str, **query: str | None) -> Response:
        """After a form: see the page it came from (303: the browser GETs it)."""
        shown = {k: v for k, v in query.items() if v}
        target = f"{path}?{urllib.parse.urlencode(shown)}" if shown else path
        return self.finish(visit, RedirectResponse(target, status_code=303))

    # ---- this server, as the outside world reaches it ---------------------------------------------------------
    async def deliver(
        self, path: str, *, content: str | bytes | None = None, json_body: Any = None, headers: dict[str, str]
    ) -> httpx.Response:
        """A request to this server over HTTP, as Slack, Jira, Alertmanager or an app sends it (the same checks,
        the same intake)."""
        async with httpx.AsyncClient(base_url=self.settings.local_url, timeout=10) as client:
            return await client.post(path, content=content, json=json_body, headers=headers)

    async def get(self, path: str, *, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.settings.local_url, timeout=10) as client:
            return await client.get(path, headers=headers)

    async def blocking(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Database reads and writes off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)


class NeedsLogin(Exception):
    """A page asked for without a session, where the console needs one: the browser goes to the login page."""


@dataclass
class People:
    """The sandbox's Slack people, with what the policy makes them."""

    ids: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
