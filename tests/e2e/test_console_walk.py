"""The console in a real browser, as a person uses it after `make run`: a sample alert sent from the Send page
becomes a card, which is walked through every workflow step by pressing its buttons and filling its forms as the
right people; the Jira view follows each move; a customer's report goes from the app to the closing e-mail in the
inbox. Hostile text in the alert shows as text. Screenshots of each page go to var/console-screenshots.

One server (SQLite, as `make run`) and one browser for the module."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.console import browser, keep_log, sandbox_server, screenshot
from tests.harness import BotProcess

pytestmark = pytest.mark.e2e
__all__ = ["browser"]

HOSTILE = "zebra checkout fails <img src=x onerror=alert(1)> <script>alert(2)</script> *not bold* <@U0OP1>"
QUICK = 1_000  # ms: a click's result is on the screen within a second
WORKED = 10_000  # ms: ample for the workers on a loaded machine; the timings are printed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    tmp = tmp_path_factory.mktemp("console-walk")
    bot = sandbox_server(tmp, f"sqlite:///{tmp}/sandbox.db")
    try:
        yield bot
    finally:
        bot.stop()
        keep_log(bot, "walk")


@pytest.fixture
def page(browser: Any, server: BotProcess) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.dialogs = []
    opened.on("dialog", lambda dialog: (opened.dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()


def slack(page: Any, channel: str, user: str) -> None:
    page.goto(f"/console/sandbox/slack?channel={channel}&as={user}")


def card(page: Any, words: str) -> Any:
    return page.locator("li.message:not(.ephemeral)", has_text=words).first


def press(page: Any, words: str, label: str) -> float:
    """Press a card's button; the seconds until the page shows what the press did (the form, or the move)."""
    started = time.monotonic()
    card(page, words).get_by_role("button", name=label, exact=True).click()
    return started


def submit(page: Any, field: str, value: str, *, select: bool) -> None:
    modal = page.locator("form.modal")
    modal.wait_for(state="visible", timeout=QUICK)
    box = modal.locator(f'[name^="f:{field}:"]')
    if select:
        box.select_option(value)
    else:
        box.fill(value)
    modal.get_by_role("button", name=modal.locator("button.primary").inner_text()).click()


def shows(page: Any, words: str, button: str, state: str, timeout: int = WORKED) -> float:
    """Wait for the card to say ``state`` and offer ``button``; the seconds it took."""
    started = time.monotonic()
    shown = card(page, words)
    shown.locator(".fields div", has_text=re.compile(rf"^\s*State\s*{re.escape(state)}\s*$")).wait_for(timeout=timeout)
    shown.get_by_role("button", name=button, exact=True).wait_for(timeout=timeout)
    return time.monotonic() - started


def jira_status(page: Any, key: str) -> str:
    page.goto(f"/console/sandbox/jira/browse/{key}")
    return str(page.locator("[data-status]").inner_text())


def test_an_alert_walked_through_every_step_by_clicks(page: Any, server: BotProcess) -> None:
    page.goto("/")
    assert page.url.endswith("/console/sandbox/slack")  # `/` leads to the sandbox's Slack
    page.locator("header nav").get_by_role("link", name="Send").click()
    page.locator('select[name="source"]').select_option("alertmanager")
    page.locator('input[name="name"]').fill("ConsoleWalk")
    page.locator('input[name="summary"]').fill(HOSTILE)
    page.get_by_role("button", name="Send alert").click()
    page.locator(".flash", has_text="202").wait_for(timeout=QUICK)
    screenshot(page, "send")

    slack(page, "C0OPS", "U0OP1")
    waited = shows(page, "zebra checkout", "Assign team", "Open")
    shown = card(page, "zebra checkout")
    assert "<img src=x onerror=alert(1)>" in shown.inner_text()  # outside text shown as text...
    assert shown.locator("img, script").count() == 0  # ...never as markup
    screenshot(page, "slack-new-card")
    print(f"new card shown {waited:.2f}s after the page loaded")

    # Olivia (operator) assigns it to payments: the form opens within a second, the card moves to #payments.
    press(page, "zebra checkout", "Assign team")
    submit(page, "team", "payments", select=True)
    slack(page, "C0PAY", "U0PA1")
    print(f"Assign team -> card in #payments in {shows(page, 'zebra checkout', 'Assign member', 'Assigned'):.2f}s")
    key = card(page, "zebra checkout").locator("a", has_text="OPS-").first.inner_text()
    assert jira_status(page, key) == "To Do"

    # Paul (the team) takes it: Jira shows him as assignee, In Progress.
    slack(page, "C0PAY", "U0PA1")
    press(page, "zebra checkout", "Assign member")
    submit(page, "member", "U0PA1", select=True)
    shows(page, "zebra checkout", "Resolve", "In progress")
    page.goto(f"/console/sandbox/jira/browse/{key}")
    page.locator("[data-status]", has_text="In Progress").wait_for(timeout=WORKED)
    page.locator("[data-assignee]", has_text="Paul Payments").wait_for(timeout=WORKED)
    screenshot(page, "jira-issue")

    slack(page, "C0PAY", "U0PA1")
    press(page, "zebra checkout", "Resolve")
    submit(page, "done", "Rolled back the checkout deploy.", select=False)
    slack(page, "C0OPS", "U0OP1")
    shows(page, "zebra checkout", "Request QA", "Resolved")

    # Someone outside the policy presses a button: only they are told no, and nothing moves.
    slack(page, "C0OPS", "U0OUT1")
    press(page, "zebra checkout", "Request QA")
    page.locator("li.message.ephemeral").first.wait_for(timeout=WORKED)
    assert card(page, "zebra checkout").get_by_role("button", name="Request QA").count() == 1

    slack(page, "C0OPS", "U0OP1")
    press(page, "zebra checkout", "Request QA")
    slack(page, "C0QA", "U0QA1")
    shows(page, "zebra checkout", "QA pass", "In QA")
    press(page, "zebra checkout", "QA pass")
    slack(page, "C0OPS", "U0OP1")
    shows(page, "zebra checkout", "Close", "Resolved")
    started = press(page, "zebra checkout", "Close")  # an alert's ticket closes with a click, no form
    shows(page, "zebra checkout", "Reopen", "Closed")
    print(f"Close -> card says closed in {time.monotonic() - started:.2f}s")
    screenshot(page, "slack-closed-card")
    assert jira_status(page, key) == "Done"

    # The operations view of the same ticket: every move, who, how.
    page.locator("header nav").get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="ConsoleWalk", exact=False).first.click()
    history = page.locator("table.timeline")
    for state in ("assigned", "in_progress", "resolved", "in_qa", "closed"):
        assert history.get_by_role("cell", name=state, exact=True).count() >= 1, state
    assert history.get_by_role("cell", name="Olivia Ops (U0OP1)").count() >= 1
    screenshot(page, "ticket")
    assert page.dialogs == []  # no script from the payload ever ran


def test_a_report_from_the_app_to_the_closing_email(page: Any, server: BotProcess) -> None:
    page.goto("/console/sandbox/send")
    page.locator('input[name="subject"]').fill("Charged twice for order 77")
    page.locator('select[name="category"]').select_option("billing")
    page.get_by_role("button", name="Send report").click()
    page.locator(".flash", has_text="sent as customer-1001").wait_for(timeout=QUICK)
    ref = page.locator(".flash").inner_text().split()[1]
    page.locator("td", has_text="A team is looking at it").wait_for(timeout=WORKED)  # what the app shows

    page.locator("header nav").get_by_role("link", name="Inbox").click()
    page.locator("ol.mails li", has_text=ref).first.wait_for(timeout=WORKED)  # the receipt

    slack(page, "C0PAY", "U0PA1")  # billing goes straight to payments
    shows(page, "Charged twice", "Assign member", "Assigned")
    press(page, "Charged twice", "Assign member")
    submit(page, "member", "U0PA1", select=True)
    shows(page, "Charged twice", "Resolve", "In progress")
    press(page, "Charged twice", "Resolve")
    submit(page, "done", "Refunded the second charge.", select=False)
    slack(page, "C0OPS", "U0OP1")
    shows(page, "Charged twice", "Close", "Resolved")
    press(page, "Charged twice", "Close")
    submit(page, "message", "We refunded the second charge. Sorry!", select=False)
    shows(page, "Charged twice", "Reopen", "Closed")

    # A change made in Jira comes back through Jira's webhook: the comment shows in the card's thread.
    key = card(page, "Charged twice").locator("a", has_text="SUP-").first.inner_text()
    page.goto(f"/console/sandbox/jira/browse/{key}?as=712020:alice")
    page.locator('textarea[name="body"]').fill("Finance confirms the refund went out.")
    page.get_by_role("button", name="Comment").click()
    page.locator(".comments li", has_text="Finance confirms").wait_for(timeout=QUICK)
    slack(page, "C0PAY", "U0PA1")  # the thread of the ticket's first card
    thread = card(page, "Charged twice").locator(".reply", has_text="Alice Example commented in Jira")
    thread.wait_for(state="attached", timeout=WORKED)
    slack(page, "C0OPS", "U0OP1")

    # /triage, answered to the one who typed it.
    page.locator('input[name="text"]').fill(f"{key}")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator("li.message.ephemeral", has_text="Charged twice").wait_for(timeout=QUICK)
    screenshot(page, "slack-triage-command")

    page.goto("/console/sandbox/send")
    page.locator("td", has_text="Closed").first.wait_for(timeout=WORKED)
    screenshot(page, "send-status")
    page.goto("/console/sandbox/inbox")
    closing = page.locator("ol.mails li", has_text=ref).first  # newest first: the closing e-mail
    closing.click()
    page.locator("pre.mail-text", has_text="We refunded the second charge").wait_for(timeout=WORKED)
    frame = page.frame_locator("iframe.mail-html")
    frame.locator("body", has_text="We refunded the second charge").wait_for(timeout=WORKED)
    screenshot(page, "inbox")

    page.goto("/console/queue")
    assert page.locator('[data-count="dead"]').inner_text() == "0"
    screenshot(page, "queue")
    page.goto("/console/policy")
    page.locator('textarea[name="payload"]').fill(
        '{"routing_key": "k", "event_action": "trigger", "dedup_key": "d", '
        '"payload": {"summary": "disk full", "source": "db1", "severity": "critical", '
        '"custom_details": {"env": "production", "service": "payments"}}}'
    )
    page.get_by_role("button", name="Route it").click()
    assert page.locator('[data-field="source"]').inner_text() == "events"
    assert page.locator('[data-field="dedup_key"]').inner_text() == "k/d" or page.locator(
        '[data-field="dedup_key"]'
    ).inner_text().endswith("d")
    screenshot(page, "policy")
    Path(server.log_path).exists()
