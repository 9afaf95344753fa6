"""The console's operations side in a real browser, with a login (TRIAGE_CONSOLE_TOKEN is set, so even the sandbox
asks for it) on PostgreSQL: Jira refuses to create an issue, the create is kept as a dead job; an operator logs in,
sees it on the queue page with its error, fixes the cause and presses Retry: the issue is created, the queue is
clear, and the ticket's timeline says who retried it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.console import browser, keep_log, sandbox_server, screenshot
from tests.harness import BotProcess, postgres_database, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
__all__ = ["browser"]

TOKEN = "console-token-0123456789"
WORKED = 10_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    tmp = tmp_path_factory.mktemp("console-queue")
    with postgres_database() as url:
        bot = sandbox_server(tmp, url, TRIAGE_CONSOLE_TOKEN=TOKEN)
        try:
            yield bot
        finally:
            bot.stop()
            keep_log(bot, "queue")


def test_an_operator_logs_in_and_retries_a_dead_job(browser: Any, server: BotProcess) -> None:
    api = httpx.Client(base_url=server.url, timeout=10)
    refuse = {"status": 400, "methods": ["POST"], "path_contains": "/rest/api/2/issue"}
    assert api.post("/sandbox/jira/_emulator/faults", json=refuse).status_code == 200

    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Give up on job N for good?"
    page.goto("/console/queue")
    assert "/console/login" in page.url  # no session: the login page first
    page.locator('input[name="token"]').fill("wrong-token-0123456789")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").filter(has_text="not the console token").wait_for()
    page.locator('input[name="token"]').fill(TOKEN)
    page.locator('input[name="name"]').fill("Olivia")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/queue")

    page.goto("/console/sandbox/send")
    page.locator('input[name="name"]').fill("DeadCreate")
    page.locator('input[name="summary"]').fill("orders stuck in pending")
    page.get_by_role("button", name="Send alert").click()
    page.locator(".flash", has_text="202").wait_for()

    page.goto("/console/queue")
    dead = page.locator("table.failed tr", has_text="jira.create")
    dead.wait_for(timeout=30_000)  # Jira's 400 is a refusal no retry fixes: kept as dead at once
    assert "400" in dead.locator("td.error").inner_text()
    assert page.locator('[data-count="dead"]').inner_text() == "1"
    screenshot(page, "queue-dead")
    job = dead.get_attribute("data-job")

    assert api.delete("/sandbox/jira/_emulator/faults").status_code == 200  # the cause is fixed
    dead.get_by_role("button", name="Retry").click()
    page.locator(".flash", has_text=f"Job {job} queued again").wait_for()
    page.locator('[data-count="dead"]', has_text="0").wait_for(timeout=WORKED)
    wait_until(lambda: any(i["key"].startswith("OPS-") for i in api.get("/sandbox/jira/_emulator/issues").json()))

    page.goto("/console/tickets?q=orders+stuck")
    page.get_by_role("link", name="orders stuck", exact=False).first.click()
    page.locator("[data-state]").wait_for()
    page.get_by_role("cell", name=f"retried failed job {job} (jira.create)").wait_for()
    assert page.get_by_role("cell", name="Olivia (console)").count() == 1
    page.get_by_role("link", name="OPS-", exact=False).first.wait_for(timeout=WORKED)
    screenshot(page, "ticket-after-retry")

    page.get_by_role("button", name="Log out").click()
    page.goto("/console/tickets")
    assert "/console/login" in page.url  # the session ended
    context.close()
