"""One ticket walked through the whole documented workflow purely by clicks and forms in Slack, with Jira,
the cards in every channel and the history checked at each step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.settings import EXAMPLE_POLICY
from tests.conftest import Emulators
from tests.e2e.helpers import buttons, cards, click, issues, post_alert, queue_drained, submit_view
from tests.harness import BotProcess, alertmanager_payload, wait_until

OPS, PAY, QA = "C0OPS", "C0PAY", "C0QA"
OPERATOR, PAUL, PETRA, QUINN = "U0OP1", "U0PA1", "U0PA2", "U0QA1"


def _only_card(emulators: Emulators, channel: str) -> dict[str, Any]:
    [card] = cards(emulators, channel)  # one card per ticket per channel, edited in place
    return card


def _state(card: dict[str, Any]) -> str:
    fields = next(b["fields"] for b in card["blocks"] if b["type"] == "section" and "fields" in b)
    return next(f["text"].split("\n", 1)[1] for f in fields if f["text"].startswith("*State*"))


def _form(emulators: Emulators, opened: int, title: str) -> dict[str, Any]:
    """The modal the bot opened after a click (it acks first, then opens it, as Slack asks)."""
    views = wait_until(lambda: emulators.slack.views()[opened:], timeout=10, what=f"the {title} form")
    [view] = views
    assert view["title"]["text"] == title
    return view


class Walk:
    def __init__(self, bot: BotProcess, emulators: Emulators, database_url: str) -> None:
        self.bot, self.emulators, self.database_url = bot, emulators, database_url

    def press(self, channel: str, label: str, user: str, form: dict[str, dict[str, str]] | None = None) -> None:
        opened = len(self.emulators.slack.views())
        card = _only_card(self.emulators, channel)
        assert label in buttons(card), f"{label!r} not on the card in {channel}: {buttons(card)}"
        assert click(self.bot.url, self.emulators, channel, card["ts"], label, user).status_code == 200
        if form is not None:
            view = _form(self.emulators, opened, label)
            answer = submit_view(self.bot.url, self.emulators, user, form)
            assert answer.status_code == 200 and not answer.content, answer.text  # accepted: the modal closes
            assert view["callback_id"] == f"triage.{label.lower().replace(' ', '_')}"
        queue_drained(self.database_url)
        assert self.emulators.slack.ephemerals() == [], "nobody should have been refused"

    def jira(self) -> dict[str, Any]:
        [issue] = issues(self.emulators)
        return issue

    def check(self, state: str, status: str, assignee: str | None, comment: str, channels: tuple[str, ...]) -> None:
        issue = self.jira()
        assert issue["fields"]["status"]["name"] == status
        assert (issue["fields"]["assignee"] or {}).get("accountId") == assignee
        assert issue["fields"]["comment"]["comments"][-1]["body"] == comment
        for channel in channels:
            assert _state(_only_card(self.emulators, channel)) == state, channel


def test_one_ticket_through_every_step_by_clicks(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    walk = Walk(bot, emulators, database_url)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("W", annotations={"summary": "checkout errors"}))
        queue_drained(database_url)
    assert buttons(_only_card(emulators, OPS)) == ["Resolve", "Assign team", "Close"]
    assert cards(emulators, PAY) == [] and cards(emulators, QA) == []

    walk.press(OPS, "Assign team", OPERATOR, {"team": {"team": "payments"}})
    walk.check("Assigned", "To Do", None, "Assign team by Olivia Ops: now Assigned (team payments).", (OPS, PAY))
    team_card = _only_card(emulators, PAY)
    assert "original card and history" in json.dumps(team_card["blocks"])
    assert buttons(team_card) == ["Assign member", "Send back"]

    # The member list is the team's, by name; the move sets the Jira assignee found by the Slack e-mail.
    opened = len(emulators.slack.views())
    assert click(bot.url, emulators, PAY, team_card["ts"], "Assign member", PAUL).status_code == 200
    view = _form(emulators, opened, "Assign member")
    options = [(o["value"], o["text"]["text"]) for o in view["blocks"][0]["element"]["options"]]
    assert options == [(PAUL, "Paul Payments"), (PETRA, "Petra Payments")]
    assert submit_view(bot.url, emulators, PAUL, {"member": {"member": PAUL}}).status_code == 200
    queue_drained(database_url)
    walk.check(
        "In progress",
        "In Progress",
        "712020:paul",
        "Assign member by Paul Payments: now In progress (assignee: [~accountid:712020:paul]).",
        (OPS, PAY),
    )
    assert "<@U0PA1>" in json.dumps(_only_card(emulators, OPS)["blocks"])  # the card shows the assignee

    walk.press(PAY, "Resolve", PAUL, {"done": {"done": "Restarted the gateway"}})
    walk.check(
        "Resolved",
        "Resolved",
        "712020:paul",
        "Resolve by Paul Payments: now Resolved.\nWhat was done: Restarted the gateway",
        (OPS, PAY),
    )
    walk.press(OPS, "Request QA", OPERATOR)
    walk.check("In QA", "Resolved", "712020:paul", "Request QA by Olivia Ops: now In QA.", (OPS, PAY, QA))
    assert buttons(_only_card(emulators, QA)) == ["QA pass", "QA fail"]
    walk.press(QA, "QA fail", QUINN)
    walk.check("In progress", "In Progress", "712020:paul", "QA fail by Quinn QA: now In progress.", (OPS, PAY, QA))
    walk.press(PAY, "Resolve", PAUL, {"done": {"done": "Fixed the retry loop too"}})
    walk.check(
        "Resolved",
        "Resolved",
        "712020:paul",
        "Resolve by Paul Payments: now Resolved.\nWhat was done: Fixed the retry loop too",
        (OPS, PAY, QA),
    )
    walk.press(OPS, "Request QA", OPERATOR)
    walk.press(QA, "QA pass", QUINN)
    walk.check("Resolved", "Resolved", "712020:paul", "QA pass by Quinn QA: now Resolved.", (OPS, PAY, QA))
    walk.press(OPS, "Close", OPERATOR)  # an alert has no customer to write to: Close needs no form
    walk.check("Closed", "Done", "712020:paul", "Close by Olivia Ops: now Closed.", (OPS, PAY, QA))
    for channel in (OPS, PAY, QA):
        assert buttons(_only_card(emulators, channel)) == ["Reopen"]

    with bot.client() as client:
        [ticket] = client.get("/api/tickets").json()["tickets"]
        history = client.get(f"/api/tickets/{ticket['id']}").json()["history"]
    moves = [(h["actor"], h["via"], h["from"], h["to"]) for h in history if h["to"]]
    assert moves == [
        ("alertmanager", "monitoring", None, "open"),
        (OPERATOR, "slack", "open", "assigned"),
        (PAUL, "slack", "assigned", "in_progress"),
        (PAUL, "slack", "in_progress", "resolved"),
        (OPERATOR, "slack", "resolved", "in_qa"),
        (QUINN, "slack", "in_qa", "in_progress"),
        (PAUL, "slack", "in_progress", "resolved"),
        (OPERATOR, "slack", "resolved", "in_qa"),
        (QUINN, "slack", "in_qa", "resolved"),
        (OPERATOR, "slack", "resolved", "closed"),
    ]
    assert "Restarted the gateway" in history[3]["note"]
    # Every step is in the original card's thread too.
    thread = emulators.slack.thread(OPS, _only_card(emulators, OPS)["ts"])
    assert len([m for m in thread if "now " in m["text"]]) == 9


def test_a_member_without_a_jira_account_is_assigned_in_slack_and_flagged(
    bot: BotProcess, emulators: Emulators, database_url: str
) -> None:
    walk = Walk(bot, emulators, database_url)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("P", labels={"service": "payments"}))
        queue_drained(database_url)
    # Routed straight to the team: it starts assigned, in the team's channel.
    assert cards(emulators, OPS) == []
    card = _only_card(emulators, PAY)
    assert _state(card) == "Assigned" and buttons(card) == ["Assign member", "Send back"]

    walk.press(PAY, "Assign member", PETRA, {"member": {"member": PETRA}})
    issue = walk.jira()
    assert issue["fields"]["status"]["name"] == "In Progress" and issue["fields"]["assignee"] is None
    thread = emulators.slack.thread(PAY, card["ts"])
    assert any("<@U0PA2> has no Jira account" in m["text"] for m in thread)

    # Someone outside the team cannot be picked (a form from before a policy change, say).
    opened = len(emulators.slack.views())
    assert click(bot.url, emulators, PAY, card["ts"], "Assign member", PETRA).status_code == 200
    _form(emulators, opened, "Assign member")
    assert submit_view(bot.url, emulators, PETRA, {"member": {"member": QUINN}}).status_code == 200
    queue_drained(database_url)
    [refusal] = emulators.slack.ephemerals(PAY, PETRA)
    assert refusal["text"] == "Nothing changed: U0QA1 is not a member of team payments."


def test_policy_user_groups_are_resolved_through_slack(
    make_bot: Any, emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        EXAMPLE_POLICY.read_text()
        .replace("operators: {channel: C0OPS, users: [U0OP1]}", "operators: {channel: C0OPS, users: [S0OPS]}")
        .replace("payments: {channel: C0PAY, users: [U0PA1, U0PA2]}", "payments: {channel: C0PAY, users: [S0PAY]}")
    )
    bot = make_bot(TRIAGE_POLICY=str(policy))
    walk = Walk(bot, emulators, database_url)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("G"))
        queue_drained(database_url)
    walk.press(OPS, "Assign team", OPERATOR, {"team": {"team": "payments"}})
    opened = len(emulators.slack.views())
    card = _only_card(emulators, PAY)
    assert click(bot.url, emulators, PAY, card["ts"], "Assign member", PETRA).status_code == 200
    view = _form(emulators, opened, "Assign member")
    assert [o["value"] for o in view["blocks"][0]["element"]["options"]] == [PAUL, PETRA]
    assert submit_view(bot.url, emulators, PETRA, {"member": {"member": PAUL}}).status_code == 200
    queue_drained(database_url)
    assert _state(_only_card(emulators, PAY)) == "In progress"
    # Someone in no group of the policy is refused.
    assert click(bot.url, emulators, PAY, card["ts"], "Resolve", QUINN).status_code == 200
    queue_drained(database_url)
    [refusal] = emulators.slack.ephemerals(PAY, QUINN)
    assert refusal["text"].startswith("Nothing changed: Resolve on an in progress ticket is for the team")


def test_a_team_channel_the_bot_cannot_post_in_holds_nothing_up(
    make_bot: Any, emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    emulators.slack.remove_bot(PAY)
    bot = make_bot()
    walk = Walk(bot, emulators, database_url)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("N"))
        queue_drained(database_url)  # dead jobs fail this wait
    walk.press(OPS, "Assign team", OPERATOR, {"team": {"team": "payments"}})
    walk.check("Assigned", "To Do", None, "Assign team by Olivia Ops: now Assigned (team payments).", (OPS,))
    thread = emulators.slack.thread(OPS, _only_card(emulators, OPS)["ts"])
    said = "I cannot post this ticket's card in <#C0PAY> (not_in_channel): please invite me there."
    assert [m["text"] for m in thread].count(said) == 1
    # The ticket goes on being worked from the original card.
    walk.press(OPS, "Assign member", "U0PA1", {"member": {"member": "U0PA1"}})
    walk.check(
        "In progress",
        "In Progress",
        "712020:paul",
        "Assign member by Paul Payments: now In progress (assignee: [~accountid:712020:paul]).",
        (OPS,),
    )


def test_a_deleted_card_is_posted_again_and_a_refused_assignee_is_said(
    bot: BotProcess, emulators: Emulators, database_url: str
) -> None:
    walk = Walk(bot, emulators, database_url)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("D", labels={"service": "payments"}))
        queue_drained(database_url)
        gone = _only_card(emulators, PAY)["ts"]
        emulators.slack.delete_message(PAY, gone)
        post_alert(client, alertmanager_payload("D", alerts=2, labels={"service": "payments"}))  # the card changes
        queue_drained(database_url)
    card = _only_card(emulators, PAY)
    assert card["ts"] != gone and "2 of 2 alerts firing" in json.dumps(card["blocks"])

    # Jira knows Paul but will not assign him (say, not an assignable user in this project).
    emulators.jira.set_fault(status=400, count=1, methods={"PUT"}, path_contains="/assignee")
    walk.press(PAY, "Assign member", PAUL, {"member": {"member": PAUL}})
    assert walk.jira()["fields"]["assignee"] is None
    thread = [m["text"] for m in emulators.slack.thread(PAY, card["ts"])]
    assert any(t.startswith(f"Jira would not assign {walk.jira()['key']} to <@U0PA1> (") for t in thread), thread
    assert _state(_only_card(emulators, PAY)) == "In progress"  # the move stands; Jira's assignee is by hand
