"""What the emulators saw, in the terms the tests assert on."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from bot.db import make_engine
from tests.conftest import Emulators
from tests.harness import wait_until


def cards(emulators: Emulators, channel: str | None = None) -> list[dict[str, Any]]:
    """Top-level ticket cards the bot posted."""
    return [
        m
        for m in emulators.slack.messages(channel)
        if not m["thread_ts"] and (m.get("metadata") or {}).get("event_type") == "triage_ticket"
    ]


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
    """Press the button labelled ``label`` on a stored message as ``user``: the signed block_actions request
    Slack would send to the bot."""
    message = emulators.slack.message(channel, ts)
    assert message is not None, f"no message {channel}/{ts}"
    button = next(
        (
            el
            for block in message["blocks"] or []
            for el in block.get("elements", [])
            if el.get("type") == "button" and el["text"]["text"] == label
        ),
        None,
    )
    assert button is not None, f"no button {label!r} on the card"
    body = emulators.slack.block_actions_payload(channel, ts, user, button["action_id"], button["value"])
    headers = emulators.slack.signed_request(body, timestamp=timestamp)
    return httpx.post(f"{bot_url}/slack/events", content=body, headers=headers, timeout=10)


def submit_view(bot_url: str, emulators: Emulators, user: str, values: dict[str, dict[str, str]]) -> httpx.Response:
    """Submit the newest modal the bot opened, as ``user``, with ``{block_id: {action_id: selected value}}``:
    the signed view_submission request Slack would send."""
    import json
    import urllib.parse

    view = emulators.slack.views()[-1]
    state = {
        block: {
            action: {"type": "static_select", "selected_option": {"value": value}} for action, value in actions.items()
        }
        for block, actions in values.items()
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0SANDBOX"},
        "api_app_id": "A0SANDBOX",
        "token": "sandbox-verification-token",
        "trigger_id": "1.2.3",
        "view": {**view, "state": {"values": state}},
        "response_urls": [],
        "is_enterprise_install": False,
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    return httpx.post(f"{bot_url}/slack/events", content=body, headers=emulators.slack.signed_request(body), timeout=10)
