"""One outside system never holds up another: a ticket's Jira work, its Slack work and its e-mail each run in their
own lane. Jira down: cards and clicks go on; Slack down: Jira issues go on; a Jira refusal that no retry can fix
is said once and holds up nothing."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import text

from bot.db.engine import make_engine
from bot.sandbox.jira_emulator import create_jira_emulator
from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import create_slack_emulator
from tests.bot.test_cli import cli
from tests.conftest import Emulators
from tests.e2e.helpers import buttons, cards, issues, post_alert, press_with_form, queue_drained
from tests.harness import BotProcess, alertmanager_payload, free_port, wait_until

OPS, PAY = "C0OPS", "C0PAY"
OPERATOR, PAUL = "U0OP1", "U0PA1"


def _card_text(card: dict[str, Any]) -> str:
    return json.dumps(card["blocks"])


def _state(card: dict[str, Any]) -> str:
    fields = next(b["fields"] for b in card["blocks"] if b["type"] == "section" and "fields" in b)
    return str(next(f["text"].split("\n", 1)[1] for f in fields if f["text"].startswith("*State*")))


def _only_card(emulators: Emulators, channel: str) -> dict[str, Any]:
    [card] = cards(emulators, channel)
    return card


def _running(database_url: str, kind: str) -> bool:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM jobs WHERE kind = :kind AND status = 'running'")
            return bool(connection.execute(query, {"kind": kind}).scalar())
    finally:
        engine.dispose()


def _thread(emulators: Emulators, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in emulators.slack.messages(channel) if m["thread_ts"] == ts]


def test_jira_down_cards_and_clicks_go_on_and_jira_catches_up(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    jira_port = free_port()  # where Jira will be: it refuses connections until the test starts it
    bot: BotProcess = make_bot(TRIAGE_JIRA_URL=f"http://127.0.0.1:{jira_port}")
    with bot.client() as client:
        sent = time.monotonic()
        post_alert(client, alertmanager_payload("JD", annotations={"summary": "checkout errors"}))
        card = wait_until(lambda: cards(emulators, OPS), timeout=10, what="the card while Jira is down")[0]
    assert time.monotonic() - sent < 10
    assert "not in Jira yet" in _card_text(card)

    # Triage goes on while Jira refuses connections: the operator assigns the team, the team's card appears.
    form = {"team": {"team": "payments"}}
    assert press_with_form(bot.url, emulators, OPS, card["ts"], "Assign team", OPERATOR, form).status_code == 200
    wait_until(lambda: cards(emulators, PAY), timeout=10, what="the team's card while Jira is down")
    wait_until(lambda: _state(_only_card(emulators, OPS)) == "Assigned", timeout=10, what="the card to move")
    assert buttons(_only_card(emulators, PAY)) == ["Assign member", "Send back"]
    assert emulators.slack.ephemerals() == []

    jira_app = create_jira_emulator()
    with ServerThread(jira_app, port=jira_port):
        jira = jira_app.state.emulator
        queue_drained(database_url, timeout=120)
        [issue] = jira.issues()
        key = issue["key"]
        assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == [
            "Assign team by Olivia Ops: now Assigned (team payments)."
        ]
        for channel in (OPS, PAY):
            shown = _card_text(_only_card(emulators, channel))
            assert key in shown and "not in Jira yet" not in shown, channel
        assert len(cards(emulators, OPS)) == 1 and len(cards(emulators, PAY)) == 1


def test_slack_down_jira_issues_go_on_and_cards_follow(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    slack_port = free_port()
    bot: BotProcess = make_bot(TRIAGE_SLACK_API_URL=f"http://127.0.0.1:{slack_port}/api/")
    with bot.client() as client:
        for n in range(5):
            post_alert(client, alertmanager_payload(f"SD{n}"))
        wait_until(lambda: len(issues(emulators)) == 5, timeout=15, what="five Jira issues while Slack is down")
        # And what follows in Jira does not wait for the cards: the problems clear, Jira hears of it.
        for n in range(5):
            post_alert(client, alertmanager_payload(f"SD{n}", status="resolved"))

    def cleared() -> bool:
        said = [[c["body"] for c in i["fields"]["comment"]["comments"]] for i in issues(emulators)]
        return all(any("cleared" in body for body in bodies) for bodies in said)

    wait_until(cleared, timeout=15, what="Jira told of the clears while Slack is down")

    slack_app = create_slack_emulator()
    with ServerThread(slack_app, port=slack_port):
        slack = slack_app.state.emulator
        queue_drained(database_url, timeout=120)
        posted = [
            m
            for m in slack.messages()
            if not m["thread_ts"] and (m.get("metadata") or {}).get("event_type") == "triage_ticket"
        ]
        assert len(posted) == 5
        keys = sorted(i["key"] for i in issues(emulators))
        assert sorted(next(k for k in keys if k in json.dumps(m["blocks"])) for m in posted) == keys
    assert len(issues(emulators)) == 5


def test_a_jira_refusal_is_said_once_and_holds_nothing_up(
    bot: BotProcess, emulators: Emulators, database_url: str
) -> None:
    with bot.client() as client:
        post_alert(client, alertmanager_payload("RF", annotations={"summary": "card reader down"}))
    queue_drained(database_url)
    [issue] = issues(emulators)
    key = issue["key"]
    # Jira's workflow refuses every transition of this issue, for good.
    emulators.jira.set_fault(status=403, methods={"POST"}, path_contains=f"/issue/{key}/transitions")

    card = _only_card(emulators, OPS)
    press_with_form(bot.url, emulators, OPS, card["ts"], "Assign team", OPERATOR, {"team": {"team": "payments"}})
    queue_drained(database_url)
    team_card = _only_card(emulators, PAY)
    press_with_form(bot.url, emulators, PAY, team_card["ts"], "Assign member", PAUL, {"member": {"member": PAUL}})
    queue_drained(database_url)
    assert _state(_only_card(emulators, PAY)) == "In progress"
    resolved = {"done": {"done": "restarted the reader"}}
    press_with_form(bot.url, emulators, PAY, team_card["ts"], "Resolve", PAUL, resolved)
    queue_drained(database_url)

    # Every card shows every move, though Jira took none of the status changes.
    for channel in (OPS, PAY):
        assert _state(_only_card(emulators, channel)) == "Resolved", channel
    assert emulators.slack.ephemerals() == []
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "To Do"
    # What Jira did take went through: the assignee, and a comment for each move.
    assert issue["fields"]["assignee"]["accountId"]
    comments = [c["body"] for c in issue["fields"]["comment"]["comments"]]
    assert len(comments) == 3 and comments[-1].startswith("Resolve by Paul Payments: now Resolved")

    # Each refused move is said once in the original card's thread, and kept for `triage-bot jobs`.
    refusals = [t for t in _thread(emulators, OPS, card["ts"]) if "Jira refused to move" in t]
    assert len(refusals) == 2, refusals
    assert sum("In progress" in t for t in refusals) == 1 and sum("Resolved" in t for t in refusals) == 1
    listed = cli("jobs", TRIAGE_DATABASE_URL=database_url)
    assert listed.returncode == 0, listed.stderr
    refused = [line for line in listed.stdout.splitlines() if " refused " in line and "jira.sync" in line]
    assert len(refused) == 2 and "refused 2" in listed.stdout, listed.stdout

    # Once Jira lets the issue move, retrying a refusal brings Jira to where the ticket is now.
    emulators.jira.clear_faults()
    assert cli("jobs", "retry", refused[0].split()[0], TRIAGE_DATABASE_URL=database_url).returncode == 0
    queue_drained(database_url)
    assert issues(emulators)[0]["fields"]["status"]["name"] == "Resolved"


def test_a_change_made_in_jira_during_a_sync_is_not_undone(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    """Paul works on the ticket; a sync is slow on its way to Jira while Alice, in Jira, gives the issue to Bob
    (whom Slack does not know). Neither that sync nor any later one may take the issue away from Bob."""
    secret = "lanes-secret"
    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=secret)
    emulators.jira.add_webhook(f"{bot.url}/jira/webhook", secret=secret)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("RC", labels={"service": "payments"}))
        queue_drained(database_url)
        card = _only_card(emulators, PAY)
        press_with_form(bot.url, emulators, PAY, card["ts"], "Assign member", PAUL, {"member": {"member": PAUL}})
        queue_drained(database_url)
        [issue] = issues(emulators)
        key = issue["key"]
        assert issue["fields"]["assignee"]["accountId"] == "712020:paul"

        # The next field update waits 3 s in Jira; meanwhile Alice assigns the issue to Bob in Jira.
        emulators.jira.set_fault(latency=3.0, count=1, methods={"PUT"}, path_contains=f"/issue/{key}")
        post_alert(client, alertmanager_payload("RC", alerts=2, labels={"service": "payments"}))
        wait_until(lambda: _running(database_url, "jira.sync"), timeout=10, what="the slow sync to start")
        emulators.jira.assign(key, "712020:bob", user="712020:alice")
        assert emulators.jira.wait_for_deliveries()
        queue_drained(database_url)
        # And a later change of the ticket's own fields: its sync must leave the assignee alone too.
        post_alert(client, alertmanager_payload("RC", alerts=3, labels={"service": "payments"}))
        queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["assignee"]["accountId"] == "712020:bob"
    assert any(
        "assigned the Jira issue to Bob" in t
        for t in _thread(emulators, PAY, card["ts"]) + _thread(emulators, "C0PAY", card["ts"])
    )
