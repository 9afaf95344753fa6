"""What the emulators saw, in the terms the tests assert on."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from bot.db.engine import make_engine
from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.harness import wait_until


def cards(emulators: Emulators, channel: str | None = None) -> list[dict[str, Any]]:
    """Top-level ticket cards the bot posted."""
    return [
        m
        for m in emulators.slack.messages(channel)
        if not m["thread_ts"] and (m.get("metadata") or {}).get("event_type") == "triage_ticket"
    ]


def buttons(card: dict[str, Any]) -> list[str]:
    """The labels of a card's buttons, in order."""
    return [el["text"]["text"] for b in card["blocks"] if b["type"] == "actions" for el in b["elements"]]


def sample(metrics: str, name: str) -> float:
    """The value of the one sample ``name`` (with its labels, as Prometheus prints them) in a /metrics text."""
    values = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.rsplit(" ", 1)[0] == name]
    assert len(values) == 1, f"{name}: {values} in\n{metrics}"
    return values[0]


def issues(emulators: Emulators) -> list[dict[str, Any]]:
    return emulators.jira.issues()


def queue_drained(database_url: str, timeout: float = 60.0) -> None:
    """Wait until no job is pending or running (dead jobs fail the wait: they are bugs here)."""
    engine = make_engine(database_url)

    def check() -> bool:
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT status, count(*) FROM jobs GROUP BY status")).all())
        assert rows.get("dead", 0) == 0, f"dead jobs: {rows}"
        return rows.get("pending", 0) == 0 and rows.get("running", 0) == 0

    try:
        wait_until(check, timeout=timeout, interval=0.1, what="the job queue to drain")
    finally:
        engine.dispose()


def post_alert(client: httpx.Client, body: dict[str, Any], source: str = "alertmanager") -> httpx.Response:
    response = client.post(f"/alerts/{source}", json=body)
    assert response.status_code == 202, response.text
    return response


def click(
    bot_url: str, emulators: Emulators, channel: str, ts: str, label: str, user: str, timestamp: int | None = None
) -> httpx.Response:
    """Press a card's button by its label, as ``user``, through the Slack emulator's signed request."""
    body, headers = emulators.slack.click(channel, ts, label, user, timestamp=timestamp)
    return httpx.post(f"{bot_url}/slack/events", content=body, headers=headers, timeout=10)


def submit_view(bot_url: str, emulators: Emulators, user: str, values: dict[str, dict[str, str]]) -> httpx.Response:
    """Submit the newest modal the bot opened, as ``user``, with ``{block_id: {action_id: value}}``."""
    body, headers = emulators.slack.submit_view(user, values)
    return httpx.post(f"{bot_url}/slack/events", content=body, headers=headers, timeout=10)


def slash(bot_url: str, emulators: Emulators, user: str, text: str, channel: str = "C0OPS") -> httpx.Response:
    """Run ``/triage text`` as ``user`` through the Slack emulator's signed request."""
    body, headers = emulators.slack.slash_command(user, text, channel)
    return httpx.post(f"{bot_url}/slack/events", content=body, headers=headers, timeout=10)


def press_with_form(
    bot_url: str, emulators: Emulators, channel: str, ts: str, label: str, user: str, values: dict[str, dict[str, str]]
) -> httpx.Response:
    """Press a button that opens a form, wait for the form, and submit it with ``values``."""
    opened = len(emulators.slack.views())
    assert click(bot_url, emulators, channel, ts, label, user).status_code == 200
    wait_until(lambda: emulators.slack.views()[opened:], timeout=10, what=f"the {label} form")
    return submit_view(bot_url, emulators, user, values)


def paul_takes_a_payments_ticket(bot_url: str, client: httpx.Client, emulators: Emulators, database_url: str) -> None:
    """An alert routed straight to payments, and Paul (U0PA1) assigning it to himself from the team's card."""
    post_alert(client, alertmanager_payload("paul", labels={"service": "payments"}))
    queue_drained(database_url)
    [card] = cards(emulators, "C0PAY")
    member = {"member": {"member": "U0PA1"}}
    answer = press_with_form(bot_url, emulators, "C0PAY", card["ts"], "Assign member", "U0PA1", member)
    assert answer.status_code == 200
    queue_drained(database_url)
