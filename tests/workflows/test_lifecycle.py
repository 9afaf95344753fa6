"""The alert lifecycle planner: every branch, as a table of situations and expected plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.harness import alertmanager_payload
from workflows.alerts import AlertmanagerWebhook, GroupNotification, from_alertmanager
from workflows.effects import EffectKind
from workflows.lifecycle import TicketSnapshot, digest, plan
from workflows.policy import Environment
from workflows.routing import Routing
from workflows.states import TicketState

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
OPS = Routing(environment="production", priority="High", team=None, channel="C0OPS")
TEAM = Routing(environment="production", priority="High", team="payments", channel="C0PAY")


def note(status: str = "firing", alerts: int = 1) -> GroupNotification:
    return from_alertmanager(AlertmanagerWebhook.model_validate(alertmanager_payload("g", alerts, status)))


def snap(
    state: TicketState,
    alert_status: str = "firing",
    same_as: GroupNotification | None = None,
    closed_ago: timedelta | None = None,
    before: TicketState | None = None,
) -> TicketSnapshot:
    return TicketSnapshot(
        state=state,
        alert_status="resolved" if alert_status == "resolved" else "firing",
        digest=digest(same_as, OPS) if same_as else "old",
        closed_at=NOW - closed_ago if closed_ago is not None else None,
        state_before_resolve=before,
    )


def kinds(p: object) -> list[str]:
    return [e.kind.value for e in p.effects]  # type: ignore[attr-defined]


def test_first_firing_creates_a_ticket_in_triage_or_with_the_team() -> None:
    created = plan(None, note(), OPS, Environment(), NOW)
    assert (created.action, created.state) == ("create", TicketState.OPEN)
    assert kinds(created) == ["jira.create", "slack.card"]
    assert plan(None, note(), TEAM, Environment(), NOW).state is TicketState.ASSIGNED


def test_redelivery_changes_nothing() -> None:
    first = note()
    assert plan(snap(TicketState.OPEN, same_as=first), first, OPS, Environment(), NOW).action == "ignore"


def test_more_alerts_update_fields_and_card_without_a_comment() -> None:
    p = plan(snap(TicketState.OPEN, same_as=note(alerts=1)), note(alerts=3), OPS, Environment(), NOW)
    assert kinds(p) == ["jira.sync", "slack.card"]


def test_resolve_for_an_unknown_problem_is_ignored() -> None:
    assert plan(None, note("resolved"), OPS, Environment(), NOW).action == "ignore"


def test_on_resolve_policies() -> None:
    open_ticket = snap(TicketState.OPEN)
    ignore = plan(open_ticket, note("resolved"), OPS, Environment(on_resolve="ignore"), NOW)
    assert kinds(ignore) == ["slack.card"] and ignore.state is TicketState.OPEN
    comment = plan(open_ticket, note("resolved"), OPS, Environment(on_resolve="comment"), NOW)
    assert kinds(comment) == ["jira.sync", "jira.comment", "slack.card", "slack.note"]
    resolve = plan(open_ticket, note("resolved"), OPS, Environment(on_resolve="resolve"), NOW)
    assert resolve.state is TicketState.RESOLVED
    # The Jira status follows by reconciliation: the sync reads the ticket's new state when it runs.
    assert kinds(resolve)[0] == "jira.sync" and resolve.effects[0].payload == {}
    again = plan(snap(TicketState.OPEN, "resolved"), note("resolved"), OPS, Environment(), NOW)
    assert again.action == "ignore"


def test_a_resolved_ticket_in_qa_is_not_moved_back_by_a_clear() -> None:
    p = plan(snap(TicketState.IN_QA), note("resolved"), OPS, Environment(on_resolve="resolve"), NOW)
    assert p.state is TicketState.IN_QA and p.action == "update" and "slack.note" in kinds(p)


def test_firing_again_after_auto_resolve_goes_back_to_where_it_was() -> None:
    p = plan(
        snap(TicketState.RESOLVED, "resolved", before=TicketState.IN_PROGRESS),
        note(),
        OPS,
        Environment(on_resolve="resolve"),
        NOW,
    )
    assert p.state is TicketState.IN_PROGRESS
    assert p.effects[0].kind is EffectKind.JIRA_SYNC


def test_reopen_within_window_else_new_ticket() -> None:
    env = Environment(reopen="24h")
    inside = plan(snap(TicketState.CLOSED, closed_ago=timedelta(hours=2)), note(), OPS, env, NOW)
    assert (inside.action, inside.state) == ("reopen", TicketState.OPEN)
    assert inside.effects[0].kind is EffectKind.JIRA_SYNC
    outside = plan(snap(TicketState.CLOSED, closed_ago=timedelta(hours=25)), note(), OPS, env, NOW)
    assert outside.action == "create"
    never = plan(
        snap(TicketState.CLOSED, closed_ago=timedelta(seconds=1)), note(), OPS, Environment(reopen="never"), NOW
    )
    assert never.action == "create"
    always = plan(
        snap(TicketState.CLOSED, closed_ago=timedelta(days=400)), note(), OPS, Environment(reopen="always"), NOW
    )
    assert always.action == "reopen"
    cleared = plan(snap(TicketState.CLOSED, closed_ago=timedelta(hours=1)), note("resolved"), OPS, env, NOW)
    assert cleared.action == "ignore"
