"""A ticket moved to Done in Jira shows as closed on its card within seconds (the emulator sends real,
signed Jira webhooks); a ticket left waiting reminds the people who should act, up to a limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.settings import EXAMPLE_POLICY
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained
from tests.harness import BotProcess, alertmanager_payload, wait_until

SECRET = "jira-webhook-secret"


def test_done_in_jira_closes_the_card_within_seconds(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=SECRET)
    emulators.jira.add_webhook(f"{bot.url}/jira/webhook", secret=SECRET)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("W"))
        queue_drained(database_url)
        [issue] = issues(emulators)
        emulators.jira.transition(issue["key"], "Done", user="alice")
        emulators.jira.add_comment(issue["key"], "Fixed the disk", user="alice")

        def closed_card() -> bool:
            [card] = cards(emulators)
            return "*State*\\nClosed" in json.dumps(card["blocks"])

        wait_until(closed_card, timeout=10, what="the card to show Closed")
        queue_drained(database_url)
        assert emulators.jira.wait_for_deliveries()
        [card] = cards(emulators)
        replies = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"])[1:]]
        assert replies == ["Alice moved this to Closed in Jira (Done).", "Alice commented in Jira: Fixed the disk"] or (
            all("Alice" in r for r in replies) and len(replies) == 2
        ), replies
        # The bot's own work (the create) came back as a webhook too, and was not echoed.
        assert all(d["status"] == 200 for d in emulators.jira.deliveries())
        assert client.get("/api/tickets").json()["tickets"][0]["state"] == "closed"


def test_waiting_tickets_remind_the_right_people_up_to_a_limit(
    make_bot: Any, emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        EXAMPLE_POLICY.read_text().replace(
            "    on_resolve: comment                           # ignore | comment | resolve",
            "    on_resolve: comment\n    escalate_after: 1s\n    escalate_limit: 2",
            1,
        )
    )
    bot: BotProcess = make_bot(TRIAGE_POLICY=str(policy), TRIAGE_ESCALATION_SCAN_SECONDS="0.3")
    with bot.client() as client:
        post_alert(client, alertmanager_payload("R"))
        post_alert(client, alertmanager_payload("T", labels={"service": "payments"}))

        def reminders(channel: str) -> list[str]:
            posted = cards(emulators, channel)
            if not posted:
                return []
            card = posted[0]
            return [m["text"] for m in emulators.slack.thread(channel, card["ts"])[1:] if "reminder" in m["text"]]

        wait_until(
            lambda: len(reminders("C0OPS")) == 2 and len(reminders("C0PAY")) == 2,
            timeout=20,
            what="two reminders per ticket",
        )
        queue_drained(database_url)
        ops, team = reminders("C0OPS"), reminders("C0PAY")
    assert ops[0].startswith("<@U0OP1> this ticket has been open for") and ops[1].endswith("(reminder 2 of 2)")
    assert team[0].startswith("<@U0PA1> <@U0PA2> this ticket has been assigned for")
    assert "please pick a member" in team[0]
    import time

    time.sleep(1.5)  # past the interval again: the limit holds
    assert len(reminders("C0OPS")) == 2

    # Assigned to the team from triage: the team's reminders go to the thread of its own copy of the card,
    # where the people they mention are.
    from tests.e2e.helpers import press_with_form

    [card] = cards(emulators, "C0OPS")
    team = {"team": {"team": "payments"}}
    assert press_with_form(bot.url, emulators, "C0OPS", card["ts"], "Assign team", "U0OP1", team).status_code == 200

    def copy_reminders() -> list[str]:
        copies = [c for c in cards(emulators, "C0PAY") if "original card" in str(c["blocks"])]
        if not copies:
            return []
        return [m["text"] for m in emulators.slack.thread("C0PAY", copies[0]["ts"])[1:] if "reminder" in m["text"]]

    wait_until(lambda: len(copy_reminders()) == 2, timeout=20, what="two reminders in the team's copy")
    assert copy_reminders()[0].startswith("<@U0PA1> <@U0PA2> this ticket has been assigned for")
    assert len(reminders("C0OPS")) == 2  # none more in the operators' thread
