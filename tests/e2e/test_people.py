"""People by name, both ways: Jira comments name Slack users as Slack does (and mention the assignee in Jira), and
an assignee set in Jira shows on the card by the name Jira gives, as a Slack mention when their e-mail maps."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Emulators
from tests.e2e.helpers import cards, click, issues, post_alert, queue_drained
from tests.harness import BotProcess, alertmanager_payload, wait_until

SECRET = "jira-webhook-secret"


def _assignee_field(emulators: Emulators) -> str:
    [card] = cards(emulators, "C0OPS")
    fields = next(b["fields"] for b in card["blocks"] if b["type"] == "section" and "fields" in b)
    return str(next(f["text"] for f in fields if f["text"].startswith("*Assignee*")).split("\n", 1)[1])


def test_an_assignee_set_in_jira_shows_by_name_and_as_a_mention(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    """Jira Cloud's webhook names the assignee without their e-mail: the bot asks Jira for it (GET user), then
    Slack for the user with it (users.lookupByEmail). Bob has no Slack user: the card names him as Jira does. And
    a comment names a Slack user even while Slack cannot say who they are."""
    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=SECRET)
    emulators.jira.add_webhook(f"{bot.url}/jira/webhook", secret=SECRET)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("who"))
        queue_drained(database_url)
        [issue] = issues(emulators)
        key = issue["key"]
        assert _assignee_field(emulators) == "nobody yet"

        emulators.jira.assign(key, "712020:paul", user="alice")
        wait_until(lambda: _assignee_field(emulators) == "<@U0PA1>", timeout=15, what="Paul mentioned on the card")
        assert client.get("/api/tickets").json()["tickets"][0]["assignee"] == "U0PA1"

        emulators.jira.assign(key, "712020:bob", user="alice")
        wait_until(lambda: _assignee_field(emulators) == "Bob Example", timeout=15, what="Bob's name on the card")
        assert emulators.jira.wait_for_deliveries()
        queue_drained(database_url)
        assert client.get("/api/tickets").json()["tickets"][0]["assignee"] is None

    # The bot asked Jira and Slack once each per person, and gave Jira nothing back: Bob stays assigned.
    [issue] = issues(emulators)
    assert issue["fields"]["assignee"]["accountId"] == "712020:bob"
    asked = [r["query"] for r in emulators.jira.requests() if r["path"].endswith("/rest/api/2/user")]
    assert sorted(asked) == ["accountId=712020%3Abob", "accountId=712020%3Apaul"], asked
    looked_up = [r["params"]["email"] for r in emulators.slack.requests() if r["method"] == "users.lookupByEmail"]
    assert looked_up == ["paul.pay@example.com", "bob@example.com"]
    assert not [r for r in emulators.jira.requests() if r["path"].endswith("/assignee")]
    [card] = cards(emulators, "C0OPS")
    replies = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"])[1:]]
    assert replies[-1] == "Alice Example assigned the Jira issue to Bob Example.", replies

    # Slack cannot say who the operator is (users.info fails): the move and its comment go all the same, the
    # comment naming them by their Slack id.
    emulators.slack.set_fault(status=503, methods={"users.info"})
    assert click(bot.url, emulators, "C0OPS", card["ts"], "Close", "U0OP1").status_code == 200
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "Done"
    assert issue["fields"]["comment"]["comments"][-1]["body"] == "Close by Slack user U0OP1: now Closed."
    assert any(r["method"] == "users.info" and r["status"] == 503 for r in emulators.slack.requests())
    assert "*State*\\nClosed" in json.dumps(cards(emulators, "C0OPS")[0]["blocks"])
