"""/triage: a ticket's card for the caller, lists by state or team, and tickets opened by hand."""

from __future__ import annotations

import json

from tests.conftest import Emulators
from tests.e2e.helpers import buttons, cards, issues, post_alert, queue_drained, slash, submit_view
from tests.harness import BotProcess, alertmanager_payload, wait_until


def test_show_and_list(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    with bot.client() as client:
        post_alert(client, alertmanager_payload("L", annotations={"summary": "disk <!channel> full"}))
        post_alert(client, alertmanager_payload("M", labels={"service": "payments"}))
        queue_drained(database_url)
    keys = sorted(issue["key"] for issue in issues(emulators))

    stranger = slash(bot.url, emulators, "U0NOBODY", "list")
    assert stranger.status_code == 200 and stranger.json()["text"].startswith("Only the operators")

    usage = slash(bot.url, emulators, "U0OP1", "").json()
    assert usage["response_type"] == "ephemeral" and "/triage new" in usage["text"]
    wrong = slash(bot.url, emulators, "U0OP1", "frobnicate <!here>").json()["text"]
    assert wrong.startswith("I don't know `frobnicate &lt;!here&gt;`")

    everything = slash(bot.url, emulators, "U0PA1", "list").json()["text"]
    assert everything.startswith("*2 unfinished tickets*")
    assert all(key in everything for key in keys)
    payments = slash(bot.url, emulators, "U0PA1", "list payments").json()["text"]
    assert payments.startswith("*1 team payments's ticket*") and "Assigned" in payments
    assert slash(bot.url, emulators, "U0QA1", "list in_qa").json()["text"] == "*0 in qa tickets*: nothing to do."
    assert "I can list by state or team" in slash(bot.url, emulators, "U0QA1", "list nonsense").json()["text"]

    shown = slash(bot.url, emulators, "U0OP1", keys[0].lower()).json()
    assert shown["response_type"] == "ephemeral" and keys[0] in shown["text"]
    assert buttons(shown) in (["Resolve", "Assign team", "Close"], ["Assign member", "Send back"])
    assert "&lt;!channel&gt;" in json.dumps(shown["blocks"]) or "payments" in json.dumps(shown["blocks"])
    assert slash(bot.url, emulators, "U0OP1", "#999").json()["text"] == "There is no ticket #999."


def test_open_a_ticket_by_hand(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    assert slash(bot.url, emulators, "U0OP1", "new", channel="C0OPS").status_code == 200
    [modal] = wait_until(emulators.slack.views, timeout=10, what="the New ticket form")
    assert modal["title"]["text"] == "New ticket"
    priorities = [o["value"] for o in modal["blocks"][2]["element"]["options"]]
    assert priorities == ["Highest", "High", "Medium", "Low"]

    empty = submit_view(bot.url, emulators, "U0OP1", {"title": {"title": "  "}, "priority": {"priority": "High"}})
    assert empty.json() == {"response_action": "errors", "errors": {"title": "Say what is wrong."}}

    values = {
        "title": {"title": "Refunds stuck <!here>"},
        "description": {"description": "Customers wait *days*"},
        "priority": {"priority": "High"},
        "owner": {"owner": "payments"},
    }
    assert submit_view(bot.url, emulators, "U0OP1", values).status_code == 200
    assert submit_view(bot.url, emulators, "U0OP1", values).status_code == 200  # Slack retried: one ticket
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["summary"] == "Refunds stuck <!here>"
    assert issue["fields"]["priority"]["name"] == "High"
    assert "Customers wait \\*days\\*" in issue["fields"]["description"]
    [card] = cards(emulators, "C0PAY")
    assert buttons(card) == ["Assign member", "Send back"]
    assert card["blocks"][0] == {
        "block_id": card["blocks"][0]["block_id"],
        "type": "header",
        "text": {"type": "plain_text", "text": "Refunds stuck <!here>", "emoji": False},
    }  # plain text: Slack shows it as it is and pings nobody
    assert "Customers wait *days*" in json.dumps(card["blocks"])
    [told] = emulators.slack.ephemerals("C0OPS", "U0OP1")
    assert told["text"].startswith("Opened ticket #") and "<#C0PAY>" in told["text"]
