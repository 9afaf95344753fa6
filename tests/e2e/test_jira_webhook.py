"""Changes made in Jira flow back: signed, deduplicated deliveries move the ticket and its card, no echo."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload

SECRET = "It's a Secret to Everybody"


def jira_delivery(
    key: str, items: list[dict[str, Any]], user: str = "712020:alice", comment: str | None = None
) -> dict[str, Any]:
    """A jira:issue_updated body as Jira Cloud sends it (api-facts.md section 3)."""
    body: dict[str, Any] = {
        "timestamp": 1606480436302,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic" if not comment else "issue_commented",
        "user": {"accountId": user, "accountType": "atlassian", "displayName": "Alice Example", "active": True},
        "issue": {"id": "10000", "key": key, "self": "http://jira/rest/api/2/issue/10000", "fields": {}},
        "changelog": {"id": "10100", "items": items},
    }
    if comment:
        body["comment"] = {"id": "1", "body": comment, "author": body["user"]}
    return body


def status_item(to: str) -> dict[str, Any]:
    return {
        "field": "status",
        "fieldtype": "jira",
        "fieldId": "status",
        "from": "10000",
        "fromString": "To Do",
        "to": "10001",
        "toString": to,
    }


def send(bot: BotProcess, body: dict[str, Any], identifier: str, secret: str | None = SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": identifier}
    if secret:
        headers["X-Hub-Signature"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(f"{bot.url}/jira/webhook", content=raw, headers=headers, timeout=10)


def test_jira_changes_move_the_ticket_and_card(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=SECRET)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("J"))
        queue_drained(database_url)
        [issue] = issues(emulators)
        key = issue["key"]

        done = jira_delivery(key, [status_item("Done")])
        assert send(bot, done, "d-1", secret=None).status_code == 401
        assert send(bot, done, "d-1", secret="wrong").json()["error"] == "bad_signature"
        assert send(bot, done, "d-1").json()["status"] == "accepted"
        assert send(bot, done, "d-1").json()["status"] == "duplicate"  # Jira's retry of the same delivery
        assert send(bot, jira_delivery("OPS-999", [status_item("Done")]), "d-2").json()["status"] == "ignored"
        ours = jira_delivery(key, [status_item("In Progress")], user="557058:sandbox-bot")  # our own echo
        assert send(bot, ours, "d-3").json()["status"] == "accepted"
        commented = jira_delivery(key, [], comment="Looking at it <!channel>")
        assert send(bot, commented, "d-4").json()["status"] == "accepted"
        queue_drained(database_url)

        ticket = client.get("/api/tickets").json()["tickets"][0]
        assert ticket["state"] == "closed"
        history = client.get(f"/api/tickets/{ticket['id']}").json()["history"]
        assert [(h["to"], h["via"], h["actor"]) for h in history if h["to"] == "closed"] == [
            ("closed", "jira", "Alice Example")
        ]
        [card] = cards(emulators)
        assert "*State*\\nClosed" in json.dumps(card["blocks"])
        replies = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"])[1:]]
        assert replies == [
            "Alice Example moved this to Closed in Jira (Done).",
            "Alice Example commented in Jira: Looking at it &lt;!channel&gt;",
        ]
        # No echo: the bot made no Jira call for any of this.
        writes = [r for r in emulators.jira.requests() if r["method"] in ("POST", "PUT")]
        assert [r["path"] for r in writes] == ["/rest/api/2/issue"]

        # The problem fires again within the reopen window (24h in production): the same issue reopens.
        post_alert(client, alertmanager_payload("J", alerts=2))
        queue_drained(database_url)
        [issue] = issues(emulators)
        assert issue["fields"]["status"]["name"] == "To Do"
        assert client.get("/api/tickets").json()["tickets"][0]["state"] == "open"


def test_without_a_secret_the_url_carries_the_token(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot: BotProcess = make_bot()
    body = jira_delivery("OPS-1", [status_item("Done")])
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    assert httpx.post(f"{bot.url}/jira/webhook", content=raw, headers=headers).status_code == 401
    good = httpx.post(f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}", content=raw, headers=headers)
    assert good.status_code == 200 and good.json()["status"] == "ignored"
    bad = httpx.post(f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}", content=b'{"x": 1}', headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_payload" and bad.json()["detail"][0]["loc"] == ["webhookEvent"]
    nameless = {"webhookEvent": "jira:issue_updated", "issue": {"fields": {}}}
    refused = httpx.post(f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}", json=nameless)
    assert refused.status_code == 422 and "naming its issue" in refused.json()["detail"][0]["msg"]
    # Older Data Center: a comment event without the issue, named by id in the comment's URL only.
    by_id = {
        "webhookEvent": "comment_created",
        "comment": {"id": "1", "self": "http://jira/rest/api/2/issue/10003/comment/1", "body": "hi"},
    }
    ignored = httpx.post(f"{bot.url}/jira/webhook?token={WEBHOOK_TOKEN}", json=by_id)
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"  # no ticket has issue 10003


def test_an_assignee_set_in_jira_shows_on_the_card_when_the_person_is_known(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    from tests.e2e.helpers import paul_takes_a_payments_ticket

    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=SECRET)
    with bot.client() as client:
        paul_takes_a_payments_ticket(bot.url, client, emulators, database_url)
        [issue] = issues(emulators)
        assert issue["fields"]["assignee"]["accountId"] == "712020:paul"

        def assignee_item(to: str | None, name: str | None) -> dict[str, Any]:
            return {"field": "assignee", "fieldId": "assignee", "to": to, "toString": name}

        assert send(bot, jira_delivery(issue["key"], [assignee_item(None, None)]), "a-1").status_code == 200
        queue_drained(database_url)
        assert client.get("/api/tickets").json()["tickets"][0]["assignee"] is None
        assert "nobody yet" in json.dumps(cards(emulators, "C0PAY")[0]["blocks"])
        back = jira_delivery(issue["key"], [assignee_item("712020:paul", "Paul Payments")])
        assert send(bot, back, "a-2").status_code == 200
        queue_drained(database_url)
        assert client.get("/api/tickets").json()["tickets"][0]["assignee"] == "U0PA1"
        assert "<@U0PA1>" in json.dumps(cards(emulators, "C0PAY")[0]["blocks"])

        # Data Center's webhook carries the assignee's e-mail address: Slack finds its user by it (Petra has no
        # Jira account on this site, and nobody assigned her from Slack before).
        petra = jira_delivery(issue["key"], [assignee_item("petra", "Petra Payments")])
        petra["issue"]["fields"]["assignee"] = {
            "name": "petra",
            "key": "JIRAUSER10100",
            "displayName": "Petra Payments",
            "emailAddress": "petra.pay@example.com",
        }
        assert send(bot, petra, "a-3").status_code == 200
        queue_drained(database_url)
        assert client.get("/api/tickets").json()["tickets"][0]["assignee"] == "U0PA2"
        assert "*Assignee*\\n<@U0PA2>" in json.dumps(cards(emulators, "C0PAY")[0]["blocks"])
