"""Who may use the console, over real HTTP against the real server in production mode (real Jira and Slack here
are the emulators on their own ports): pages and actions need a session made from TRIAGE_CONSOLE_TOKEN, every
form needs its CSRF token, sessions cannot be forged, and hostile text renders inert. /docs works offline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sandbox.jira_emulator import create_jira_emulator
from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import create_slack_emulator
from bot.settings import Settings
from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload, bot_env, wait_until
from webhooks.app import create_app

TOKEN = "console-token-0123456789"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    tmp = tmp_path_factory.mktemp("console-access")
    with ServerThread(create_jira_emulator()) as jira, ServerThread(create_slack_emulator()) as slack:
        env = bot_env(f"sqlite:///{tmp}/triage.db", jira.url, slack.url + "/api/", TRIAGE_CONSOLE_TOKEN=TOKEN)
        bot = BotProcess(env=env, log_path=tmp / "bot.log").start()
        try:
            yield bot
        finally:
            bot.kill()


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def logged_in(server: BotProcess, name: str = "Olivia") -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=server.url, timeout=10)
    csrf = csrf_of(browser.get("/console/login"))
    answer = browser.post("/console/login", data={"csrf": csrf, "token": TOKEN, "name": name, "next": "/console/"})
    assert answer.status_code == 303, answer.text
    return browser, csrf_of(browser.get("/console/queue"))


def test_pages_and_actions_need_a_session(server: BotProcess) -> None:
    anonymous = httpx.Client(base_url=server.url, timeout=10)
    for path in ("/console/", "/console/tickets", "/console/tickets/1", "/console/queue", "/console/policy"):
        answer = anonymous.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next="), path
    csrf = csrf_of(anonymous.get("/console/login"))  # a real anonymous session's token, and still refused
    for path in ("/console/queue/1/retry", "/console/queue/1/drop", "/console/policy/dry-run"):
        assert anonymous.post(path, data={"csrf": csrf}).status_code == 401, path
    assert anonymous.get("/").headers["location"] == "/console/"


def test_the_login_gives_a_signed_httponly_strict_cookie(server: BotProcess) -> None:
    browser = httpx.Client(base_url=server.url, timeout=10)
    csrf = csrf_of(browser.get("/console/login"))
    wrong = browser.post("/console/login", data={"csrf": csrf, "token": "not-the-token-0000000"})
    assert wrong.status_code == 401
    assert "not the console token" in wrong.text
    no_csrf = browser.post("/console/login", data={"token": TOKEN})
    assert no_csrf.status_code == 403
    answer = browser.post("/console/login", data={"csrf": csrf, "token": TOKEN, "name": "Olivia"})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = browser.get("/console/tickets")
    assert page.status_code == 200
    assert "Olivia" in page.text


def test_every_form_needs_its_csrf_token(server: BotProcess) -> None:
    browser, csrf = logged_in(server)
    _, other_csrf = logged_in(server, "Mallory")
    assert other_csrf != csrf
    for forged in ({"as": "x"}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": other_csrf}):
        answer = browser.post("/console/queue/1/retry", data=forged)
        assert answer.status_code == 403, forged
        assert "CSRF" in answer.text
    json_body = browser.post("/console/queue/1/retry", json={"csrf": csrf})
    assert json_body.status_code == 415  # only a form: a cross-site JSON post cannot pass as one
    ok = browser.post("/console/queue/1/retry", data={"csrf": csrf})
    assert ok.status_code == 303  # accepted (there is no such job: said on the next page)
    assert "Job 1 is not dead or refused" in browser.get("/console/queue").text


def test_a_forged_or_stale_session_is_no_session(server: BotProcess) -> None:
    browser, _ = logged_in(server)
    value = browser.cookies["triage_console"]
    data, signature = value.split(".")
    for forged in (f"{data}.{signature[:-2]}AA", f"{data[:-4]}AAAA.{signature}", "garbage", ""):
        anonymous = httpx.Client(base_url=server.url, timeout=10, cookies={"triage_console": forged})
        assert anonymous.get("/console/tickets").status_code == 303, forged


def test_console_pages_carry_security_headers(server: BotProcess) -> None:
    browser, _ = logged_in(server)
    page = browser.get("/console/tickets")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text.replace('<script src="/console/static/console.js" defer></script>', "")


def test_hostile_text_renders_inert(server: BotProcess) -> None:
    api = server.client()
    body = alertmanager_payload("hostile", annotations={"summary": HOSTILE})
    assert api.post("/alerts/alertmanager", json=body).status_code == 202
    wait_until(lambda: api.get("/api/tickets").json()["tickets"], what="the ticket")
    browser, csrf = logged_in(server)
    for path in ("/console/tickets", "/console/tickets?q=script", "/console/tickets/1"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text, path
        assert HOSTILE not in page.text and "<img src=x" not in page.text, path
    dry = browser.post("/console/policy/dry-run", data={"csrf": csrf, "payload": _json(body)})
    assert dry.status_code == 200
    assert "&lt;script&gt;" in dry.text and HOSTILE not in dry.text


def test_the_sandbox_pages_are_not_there_in_production(server: BotProcess) -> None:
    browser, _ = logged_in(server)
    for path in ("/console/sandbox/slack", "/console/sandbox/jira", "/console/sandbox/inbox"):
        assert browser.get(path).status_code == 404, path


def test_docs_work_offline(server: BotProcess) -> None:
    page = httpx.get(f"{server.url}/docs", timeout=10)
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/") for s in sources), sources  # nothing from another site
    for source in sources:
        assert httpx.get(f"{server.url}{source}", timeout=10).status_code == 200, source


def test_the_console_is_off_without_its_token_outside_the_full_sandbox(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/off.db",
        webhook_token=WEBHOOK_TOKEN,
        jira_url="http://127.0.0.1:9/",
        jira_token="jira-token",
        slack_bot_token="xoxb-real",
        slack_signing_secret="secret",
        workers=0,
    )
    app = create_app(settings)
    paths = {getattr(route, "path", "") for route in app.routes}
    assert not any(p == "/" or p.startswith("/console") for p in paths)


def _json(body: Any) -> str:
    import json

    return json.dumps(body)
