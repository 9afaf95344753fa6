"""Every source of change has one pure planner: ticket + event -> history, new state and effects, by system."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.settings import EXAMPLE_POLICY
from workflows.clicks import Click, LastMove, plan_click
from workflows.commands import NewTicket, plan_new_ticket
from workflows.effects import EffectKind, System
from workflows.escalation import plan_reminder
from workflows.jira_changes import plan_jira_change
from workflows.jira_webhooks import JiraWebhook
from workflows.policy import load_policy
from workflows.reports import ReportIn, plan_report, route, unique_names
from workflows.states import TicketState
from workflows.tickets import TicketView
from workflows.transitions import Action

POLICY = load_policy(EXAMPLE_POLICY)
OPERATOR, PAUL, OUTSIDER = "U0OP1", "U0PA1", "U0XX9"


def members(users: tuple[str, ...]) -> frozenset[str]:
    return frozenset(users)


def ticket(state: TicketState = TicketState.OPEN, **fields: Any) -> TicketView:
    base: dict[str, Any] = {
        "id": 7,
        "title": "checkout errors",
        "source": "alertmanager",
        "environment": "production",
        "priority": "High",
        "state": state,
        "team": None,
        "alert_status": "firing",
        "dedup_label": "triage-abc-1",
        "version": 3,
    }
    return TicketView(**(base | fields))


def kinds(effects: Any) -> list[str]:
    return [e.kind.value for e in effects]


def click(action: Action, user: str = OPERATOR, version: int | None = 3, **said: str) -> Click:
    return Click(action=action, ticket=7, version=version, user=user, channel="C0OPS", **said)


def test_a_click_moves_the_ticket_and_reconciles_jira_instead_of_replaying_the_move() -> None:
    plan = plan_click(
        ticket(),
        click(Action.ASSIGN_TEAM, team="payments"),
        policy=POLICY,
        members=members,
        has_customer=False,
        last_move=None,
    )
    assert plan.to is TicketState.ASSIGNED and plan.tell is None
    assert plan.set_team and plan.team == "payments" and not plan.set_assignee
    assert kinds(plan.effects) == ["jira.sync", "jira.comment", "slack.card", "slack.note"]
    assert [e.system for e in plan.effects] == [System.JIRA, System.JIRA, System.SLACK, System.SLACK]
    assert plan.effects[0].payload == {}  # the sync reads the ticket's state when it runs
    assert plan.show_in == ("C0PAY",)
    assert plan.history[0].actor == OPERATOR and plan.history[0].via == "slack"


def test_a_refused_click_changes_nothing_and_says_who_moved_it() -> None:
    stale = plan_click(
        ticket(TicketState.ASSIGNED, team="payments"),
        click(Action.ASSIGN_TEAM, version=2, team="payments"),
        policy=POLICY,
        members=members,
        has_customer=False,
        last_move=LastMove(OPERATOR, "slack", TicketState.ASSIGNED),
    )
    assert not stale.changes_ticket and stale.effects == ()
    assert stale.tell == f"Nothing changed: <@{OPERATOR}> already moved it to Assigned."
    outsider = plan_click(
        ticket(), click(Action.CLOSE, user=OUTSIDER), policy=POLICY, members=members, has_customer=False, last_move=None
    )
    assert outsider.tell is not None and "for the operator" in outsider.tell and not outsider.changes_ticket
    no_team = plan_click(
        ticket(),
        click(Action.ASSIGN_TEAM, team="nope"),
        policy=POLICY,
        members=members,
        has_customer=False,
        last_move=None,
    )
    assert no_team.tell is not None and no_team.tell.startswith("Nothing changed: there is no team")


def test_closing_a_customers_ticket_with_a_message_emails_them() -> None:
    plan = plan_click(
        ticket(TicketState.RESOLVED),
        click(Action.CLOSE, text="Fixed, thanks for telling us"),
        policy=POLICY,
        members=members,
        has_customer=True,
        last_move=None,
    )
    mail = [e for e in plan.effects if e.kind is EffectKind.MAIL_SEND]
    assert plan.to is TicketState.CLOSED
    assert [m.payload for m in mail] == [{"kind": "closed", "context": {"message": "Fixed, thanks for telling us"}}]
    assert mail[0].system is System.MAIL


def test_sending_back_to_triage_clears_team_and_member() -> None:
    plan = plan_click(
        ticket(TicketState.ASSIGNED, team="payments", assignee=PAUL),
        click(Action.SEND_BACK, user=PAUL),
        policy=POLICY,
        members=members,
        has_customer=False,
        last_move=None,
    )
    assert plan.to is TicketState.OPEN
    assert (plan.set_team, plan.team, plan.set_assignee, plan.assignee) == (True, None, True, None)


def change(items: list[dict[str, Any]] | None = None, comment: dict[str, Any] | None = None) -> JiraWebhook:
    """A Jira Cloud issue_updated delivery by Alice, as Jira sends it."""
    body: dict[str, Any] = {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": "712020:alice", "displayName": "Alice"},
        "issue": {"id": "10001", "key": "OPS-1", "fields": {}},
        "changelog": {"id": "1", "items": items or []},
    }
    if comment is not None:
        body["comment"] = comment
    return JiraWebhook.model_validate(body)


def status(name: str) -> dict[str, Any]:
    return {"field": "status", "fieldtype": "jira", "fieldId": "status", "toString": name}


def test_a_move_made_in_jira_follows_in_slack_only() -> None:
    plan = plan_jira_change(
        ticket(TicketState.IN_PROGRESS, team="payments", customer_email="jane@example.com"),
        change([status("Done")]),
        policy=POLICY,
        own=frozenset({"bot"}),
        slack_user_of={},
        comment_seen=False,
    )
    assert plan.to is TicketState.CLOSED and plan.in_jira
    assert {e.system for e in plan.effects} == {System.SLACK, System.MAIL}  # nothing back to Jira
    assert plan.effects[0].kind is EffectKind.SLACK_CARD


def test_our_own_change_coming_back_and_a_repeated_comment_are_nothing() -> None:
    own = plan_jira_change(
        ticket(),
        change([status("In Progress")]),
        policy=POLICY,
        own=frozenset({"712020:alice"}),
        slack_user_of={},
        comment_seen=False,
    )
    assert not own.changes_ticket and own.effects == ()
    seen = plan_jira_change(
        ticket(),
        change(comment={"id": "10001", "body": "looking"}),
        policy=POLICY,
        own=frozenset(),
        slack_user_of={},
        comment_seen=True,
    )
    assert not seen.changes_ticket and seen.effects == ()


def test_an_assignee_set_in_jira_maps_to_the_known_slack_user_and_a_comment_masks_the_customer() -> None:
    plan = plan_jira_change(
        ticket(customer_email="Jane.Doe@example.com"),
        change(
            [{"field": "assignee", "fieldId": "assignee", "to": "712020:paul", "toString": "Paul"}],
            comment={"id": "10002", "body": "wrote to jane.doe@example.com"},
        ),
        policy=POLICY,
        own=frozenset(),
        slack_user_of={"712020:paul": PAUL},
        comment_seen=False,
    )
    assert plan.set_assignee and plan.assignee == PAUL and plan.to is None
    notes = [e.payload["text"] for e in plan.effects if e.kind is EffectKind.SLACK_NOTE]
    assert notes[0] == "Alice assigned the Jira issue to Paul."
    assert "jane.doe@example.com" not in notes[1].lower() and notes[1].endswith("wrote to J***@example.com")


def test_new_tickets_open_with_their_issue_and_card_in_separate_lanes() -> None:
    opening = plan_new_ticket(NewTicket("printer on fire", "", "High", "payments"), PAUL, POLICY, allowed=True)
    assert opening is not None
    assert (opening.state, opening.team, opening.channel) == (TicketState.ASSIGNED, "payments", "C0PAY")
    assert kinds(opening.plan.effects) == ["jira.create", "slack.card"]
    assert plan_new_ticket(NewTicket("x", "", "High", None), OUTSIDER, POLICY, allowed=False) is None
    to_triage = plan_new_ticket(NewTicket("x", "", "High", "nope"), OPERATOR, POLICY, allowed=True)
    assert to_triage is not None and (to_triage.state, to_triage.channel) == (TicketState.OPEN, "C0OPS")


def test_a_report_opens_with_its_files_and_receipt() -> None:
    report = ReportIn.model_validate(
        {
            "subject": "Checkout fails",
            "description": "It spins",
            "category": "billing",
            "app": {"name": "Shop", "version": "4.2.0", "platform": "ios"},
            "attachments": [
                {"filename": "log.txt", "content_type": "text/plain", "data": "aGk="},
                {"filename": "log.txt", "content_type": "text/plain", "data": "aGk="},
            ],
        }
    )
    opening = plan_report(report, route(POLICY, report), "customer-1", has_email=True)
    assert kinds(opening.plan.effects) == ["jira.create", "slack.card", "jira.attach", "jira.attach", "mail.send"]
    assert [e.payload.get("filename") for e in opening.plan.effects[2:4]] == ["log.txt", "log (2).txt"]
    assert unique_names(["a", "a", "a.b", "a.b"]) == ["a", "a (2)", "a.b", "a (2).b"]
    quiet = plan_report(report, route(POLICY, report), "customer-1", has_email=False)
    assert "mail.send" not in kinds(quiet.plan.effects)


def test_a_reminder_goes_to_the_thread_of_the_people_it_mentions() -> None:
    plan = plan_reminder(POLICY, TicketState.ASSIGNED, "payments", timedelta(minutes=45), 1, 3)
    [effect] = plan.effects
    assert effect.kind is EffectKind.SLACK_NOTE and effect.payload["channel"] == "C0PAY"
    assert effect.payload["mention"] == list(POLICY.teams["payments"].users)
    assert plan.history[0].note == "reminder 1 sent" and plan.to is None


def test_an_assignee_in_jira_with_no_slack_user_is_named_on_the_card_and_in_the_list() -> None:
    from workflows.cards import card
    from workflows.commands import Command, listing

    bob = [{"field": "assignee", "fieldId": "assignee", "to": "712020:bob", "toString": "Bob <Example>"}]
    plan = plan_jira_change(ticket(), change(bob), policy=POLICY, own=frozenset(), slack_user_of={}, comment_seen=False)
    assert plan.set_assignee and plan.assignee is None and plan.assignee_name == "Bob <Example>"
    shown = ticket(assignee_name=plan.assignee_name)
    assert "*Assignee*\nBob &lt;Example&gt;" in [f["text"] for b in card(shown) for f in b.get("fields", [])]
    assert "Bob &lt;Example&gt;" in listing([shown], Command("list"), more=False)
    # Mapped to a Slack user, the card mentions them; unassigned in Jira, nobody.
    paul = plan_jira_change(
        ticket(assignee_name="Bob"),
        change([bob[0] | {"to": "712020:paul", "toString": "Paul"}]),
        policy=POLICY,
        own=frozenset(),
        slack_user_of={"712020:paul": PAUL},
        comment_seen=False,
    )
    assert (paul.assignee, paul.assignee_name) == (PAUL, "Paul")
    shown = ticket(assignee=PAUL, assignee_name="Paul")
    assert "*Assignee*\n<@U0PA1>" in [f["text"] for b in card(shown) for f in b.get("fields", [])]
    nobody = plan_jira_change(
        ticket(assignee_name="Bob"),
        change([bob[0] | {"to": None, "toString": None}]),
        policy=POLICY,
        own=frozenset(),
        slack_user_of={},
        comment_seen=False,
    )
    assert nobody.set_assignee and (nobody.assignee, nobody.assignee_name) == (None, None)


def test_a_click_comment_names_people_and_mentions_the_assignee() -> None:
    from workflows.effects import named_in
    from workflows.tickets import Someone, comment_naming

    plan = plan_click(
        ticket(TicketState.ASSIGNED, team="payments"),
        click(Action.ASSIGN_MEMBER, user=PAUL, member=PAUL),
        policy=POLICY,
        members=members,
        has_customer=False,
        last_move=None,
    )
    [payload] = [e.payload for e in plan.effects if e.kind is EffectKind.JIRA_COMMENT]
    assert named_in(payload) == [PAUL]
    known = {PAUL: Someone(PAUL, "Paul *Payments*", "712020:paul")}
    said = "Assign member by Paul \\*Payments\\*: now In progress (assignee: [~accountid:712020:paul])."
    assert comment_naming(payload["parts"], known, cloud=True) == said
    dc = {PAUL: Someone(PAUL, "Paul", "paul.pay")}
    assert comment_naming(payload["parts"], dc, cloud=False).endswith("(assignee: [~paul.pay]).")
    # Slack could not say who they are: their id; a Jira account markup cannot hold: their name.
    assert comment_naming(payload["parts"], {}, cloud=True) == (
        "Assign member by Slack user U0PA1: now In progress (assignee: Slack user U0PA1)."
    )
    odd = {PAUL: Someone(PAUL, "Paul", "paul]evil")}
    assert comment_naming(payload["parts"], odd, cloud=False).endswith("(assignee: Paul).")
