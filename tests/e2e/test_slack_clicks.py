"""Buttons on the card drive the workflow: signed clicks, roles, races, and Jira kept in step."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.conftest import Emulators
from tests.e2e.helpers import cards, click, issues, post_alert, queue_drained
from tests.harness import BotProcess, alertmanager_payload, wait_until


def _buttons(card: dict[str, Any]) -> list[str]:
    return [el["text"]["text"] for b in card["blocks"] if b["type"] == "actions" for el in b["elements"]]


def test_clicks_move_the_ticket_by_role(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    with bot.client() as client:
        post_alert(client, alertmanager_payload("C"))
        queue_drained(database_url)
    [card] = cards(emulators, "C0OPS")
    assert _buttons(card) == ["Resolve", "Assign team", "Close"]

    # A team member may not resolve an untriaged ticket: no form opens, nothing changes, they are told why.
    assert click(bot.url, emulators, "C0OPS", card["ts"], "Resolve", "U0PA1").status_code == 200
    queue_drained(database_url)
    [note] = emulators.slack.ephemerals("C0OPS", "U0PA1")
    assert note["text"].startswith("Nothing changed: Resolve on an open ticket is for the operator")
    assert emulators.slack.views() == []
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "To Do"

    # The operator closes it; a second click on the same (now stale) card is refused, naming the winner. Both are
    # pressed on the card as it is now, before the first can have redrawn it.
    presses = [emulators.slack.click("C0OPS", card["ts"], "Close", "U0OP1") for _ in range(2)]
    for body, headers in presses:
        assert httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=10).status_code == 200
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "Done"
    assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == ["Close by Olivia Ops: now Closed."]
    refusals = [e["text"] for e in emulators.slack.ephemerals("C0OPS", "U0OP1")]
    assert refusals == ["Nothing changed: <@U0OP1> already moved it to Closed."]
    [card] = cards(emulators, "C0OPS")
    assert "*State*\\nClosed" in json.dumps(card["blocks"])
    assert _buttons(card) == ["Reopen"]

    # Reopened with nobody assigned, it goes back to triage; Jira follows.
    assert click(bot.url, emulators, "C0OPS", card["ts"], "Reopen", "U0OP1").status_code == 200
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "To Do"
    [card] = cards(emulators, "C0OPS")
    assert _buttons(card) == ["Resolve", "Assign team", "Close"]


def test_forged_and_replayed_clicks_are_refused(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    with bot.client() as client:
        post_alert(client, alertmanager_payload("F"))
        queue_drained(database_url)
    [card] = cards(emulators, "C0OPS")
    stale = click(bot.url, emulators, "C0OPS", card["ts"], "Close", "U0OP1", timestamp=int(time.time()) - 600)
    assert stale.status_code == 401
    body = emulators.slack.block_actions_payload("C0OPS", card["ts"], "U0OP1", "triage.close", _value(card, "Close"))
    headers = emulators.slack.signed_request(body) | {"X-Slack-Signature": "v0=" + "0" * 64}
    import httpx

    assert httpx.post(f"{bot.url}/slack/events", content=body, headers=headers).status_code == 401
    # A signed click for a ticket this bot does not have: the clicker is told, nothing else happens.
    unknown = emulators.slack.block_actions_payload(
        "C0OPS", card["ts"], "U0OP1", "triage.close", '{"ticket":999,"version":1}'
    )
    assert (
        httpx.post(
            f"{bot.url}/slack/events", content=unknown, headers=emulators.slack.signed_request(unknown)
        ).status_code
        == 200
    )
    queue_drained(database_url)
    [told] = emulators.slack.ephemerals("C0OPS", "U0OP1")
    assert told["text"] == "Nothing changed: there is no ticket #999."
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "To Do"


def _value(card: dict[str, Any], label: str) -> str:
    return next(
        el["value"]
        for b in card["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
        if el["text"]["text"] == label
    )


def test_assign_team_through_its_form_then_send_back(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    from tests.e2e.helpers import submit_view

    with bot.client() as client:
        post_alert(client, alertmanager_payload("A"))
        queue_drained(database_url)
        [card] = cards(emulators, "C0OPS")
        assert _buttons(card) == ["Resolve", "Assign team", "Close"]
        assert click(bot.url, emulators, "C0OPS", card["ts"], "Assign team", "U0OP1").status_code == 200
        # The listener acks first and opens the form right after, as Slack recommends: wait for it.
        [modal] = wait_until(emulators.slack.views, timeout=10, what="the Assign team modal")
        assert modal["title"]["text"] == "Assign team"
        options = [o["value"] for o in modal["blocks"][0]["element"]["options"]]
        assert options == ["payments"]
        refused = submit_view(bot.url, emulators, "U0OP1", {"team": {"team": "nope"}})
        assert refused.status_code == 200 and refused.json()["response_action"] == "errors"
        assert submit_view(bot.url, emulators, "U0OP1", {"team": {"team": "payments"}}).status_code == 200
        assert submit_view(bot.url, emulators, "U0OP1", {"team": {"team": "payments"}}).status_code == 200
        queue_drained(database_url)
        ticket = client.get("/api/tickets").json()["tickets"][0]
        assert (ticket["state"], ticket["team"]) == ("assigned", "payments")
        [issue] = issues(emulators)
        assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == [
            "Assign team by Olivia Ops: now Assigned (team payments)."
        ]  # the resubmission changed nothing
        assert issue["fields"]["status"]["name"] == "To Do"
        [card] = cards(emulators, "C0OPS")
        assert _buttons(card) == ["Assign member", "Send back"]
        assert click(bot.url, emulators, "C0OPS", card["ts"], "Send back", "U0PA1").status_code == 200
        queue_drained(database_url)
        assert client.get("/api/tickets").json()["tickets"][0]["state"] == "open"


def test_a_burst_of_moves_under_slack_rate_limits(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    """Slack's per-channel posting limit and 429s on card edits delay the updates; none is lost or doubled."""
    tickets = 8
    with bot.client() as client:
        for n in range(tickets):
            post_alert(client, alertmanager_payload(f"burst{n}"))
        queue_drained(database_url)
    emulators.slack.rate_limit_per_channel = 1.0  # about what Slack allows for posting in one channel
    for round_, (label, state) in enumerate((("Close", "Closed"), ("Reopen", "Open"), ("Close", "Closed"))):
        emulators.slack.set_fault(status=429, seconds=3, retry_after=1, methods={"chat.update"})
        for card in cards(emulators, "C0OPS"):
            assert click(bot.url, emulators, "C0OPS", card["ts"], label, "U0OP1").status_code == 200
        queue_drained(database_url, timeout=120)
        for card in cards(emulators, "C0OPS"):
            assert f"*State*\\n{state}" in json.dumps(card["blocks"]), (round_, card["ts"])
    limited = [r for r in emulators.slack.requests() if r["status"] == 429]
    assert {r["method"] for r in limited} == {"chat.update", "chat.postMessage"}  # both limits were hit
    assert len(cards(emulators, "C0OPS")) == tickets
    for card in cards(emulators, "C0OPS"):
        notes = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"]) if "now " in m["text"]]
        assert [n.split("now ")[1] for n in notes] == ["Closed.", "Open.", "Closed."], notes
    for issue in issues(emulators):
        assert issue["fields"]["status"]["name"] == "Done"
        assert len(issue["fields"]["comment"]["comments"]) == 3
