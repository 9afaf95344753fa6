"""What a monitoring notification does to its ticket: a pure planner over the ticket's last known state.

The worker feeds it the stored snapshot of the ticket and the notification, saves the new snapshot and
queues the effects, all in one transaction. Redeliveries produce an empty plan, which is what makes them
harmless.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from workflows.alerts import GroupNotification, Status
from workflows.effects import CARD, SYNC, Effect, EffectKind, comment
from workflows.effects import note as thread_note
from workflows.plans import Entry, Plan
from workflows.policy import Environment
from workflows.routing import Routing
from workflows.states import ACTIVE_STATES, TicketState, initial_state


@dataclass(frozen=True)
class TicketSnapshot:
    state: TicketState
    alert_status: Status
    digest: str
    closed_at: datetime | None = None
    state_before_resolve: TicketState | None = None
    test: bool = False  # a test notification's card, not a problem


Action = Literal["create", "reopen", "update", "ignore"]
TestHandling = Literal["ignore", "card"]


@dataclass(frozen=True)
class AlertPlan:
    action: Action
    state: TicketState | None = None
    effects: tuple[Effect, ...] = ()
    note: str = ""
    test: bool = False  # the ticket is a test notification's card

    @property
    def changes_ticket(self) -> bool:
        return self.action != "ignore"

    def as_plan(self, source: str, current: TicketState | None) -> Plan:
        """The decision as every planner's ``Plan``: one history entry (a move when the state changes, or the
        opening state of a new ticket) and the effects."""
        to = self.state if self.state is not None and (self.action == "create" or self.state is not current) else None
        return Plan(history=(Entry(source, "monitoring", self.note, to=to),), effects=self.effects)


def digest(note: GroupNotification, routing: Routing) -> str:
    """What the ticket shows of a notification; equal digests mean there is nothing to update. (Not the title:
    a ticket keeps the one it opened with.)"""
    content = {
        "status": note.status,
        "priority": routing.priority,
        "annotations": note.annotations,
        "alerts": sorted(
            (a.fingerprint, a.status, a.name, sorted(a.annotations.items()), a.value, sorted(a.details.items()))
            for a in note.alerts
        ),
        "truncated": note.truncated_alerts,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def _can_reopen(env: Environment, closed_at: datetime | None, now: datetime) -> bool:
    window = env.reopen_window()
    if window is None:
        return False
    if window == timedelta.max or closed_at is None:
        return True
    return now - closed_at <= window


def plan(
    ticket: TicketSnapshot | None,
    note: GroupNotification,
    routing: Routing,
    env: Environment,
    now: datetime,
    test: TestHandling | None = None,
) -> AlertPlan:
    """``test``: the notification is a test, and the policy says how to handle it (None: it is not one)."""
    new_digest = digest(note, routing)
    if test is not None:
        return _plan_test(ticket, note, new_digest, test)
    if ticket is not None and ticket.test:
        ticket = None  # the group's test card is no ticket to update: a real problem opens its own
    start = initial_state(routing.team)
    if ticket is None or (
        ticket.state is TicketState.CLOSED
        and note.status == "firing"
        and not note.acknowledged
        and not _can_reopen(env, ticket.closed_at, now)
    ):
        if note.status != "firing" or note.acknowledged:
            return AlertPlan("ignore", note="no open ticket for this problem; nothing to do")
        return AlertPlan(
            "create",
            state=start,
            effects=(Effect(EffectKind.JIRA_CREATE), CARD),
            note=f"ticket opened for {routing.owner}",
        )

    if note.acknowledged:
        if ticket.state is TicketState.CLOSED:
            return AlertPlan("ignore", note="acknowledged after close; nothing to do")
        return AlertPlan(
            "update",
            state=ticket.state,
            effects=(thread_note("Acknowledged by monitoring."),),
            note="acknowledged by monitoring",
        )

    if ticket.state is TicketState.CLOSED:
        if note.status == "resolved":
            return AlertPlan("ignore", note="cleared after the ticket was closed")
        text = "The problem fired again after this ticket was closed; reopened."
        return AlertPlan(
            "reopen",
            state=start,
            effects=(SYNC, comment(text), CARD, thread_note(text)),
            note="reopened: fired again after close",
        )

    if note.status == "firing":
        if ticket.alert_status == "resolved":
            text = "The problem fired again."
            if ticket.state is TicketState.RESOLVED:
                back = ticket.state_before_resolve or start
                return AlertPlan(
                    "update",
                    state=back,
                    effects=(SYNC, comment(text), CARD, thread_note(text)),
                    note="fired again; back from resolved",
                )
            return AlertPlan(
                "update", state=ticket.state, effects=(SYNC, comment(text), CARD, thread_note(text)), note="fired again"
            )
        if ticket.digest == new_digest:
            return AlertPlan("ignore", note="nothing new")
        return AlertPlan("update", state=ticket.state, effects=(SYNC, CARD), note="alerts changed")

    # note.status == "resolved"
    if ticket.alert_status == "resolved":
        return AlertPlan("ignore", note="already cleared")
    text = "All alerts of this problem have cleared."
    if env.on_resolve == "ignore":
        return AlertPlan("update", state=ticket.state, effects=(CARD,), note="cleared (on_resolve: ignore)")
    if env.on_resolve == "resolve" and ticket.state in ACTIVE_STATES:
        resolved = TicketState.RESOLVED
        return AlertPlan(
            "update",
            state=resolved,
            effects=(
                SYNC,
                comment(text + " Resolved automatically."),
                CARD,
                thread_note(text + " Resolved automatically; waiting for verification."),
            ),
            note="cleared; resolved (on_resolve: resolve)",
        )
    return AlertPlan(
        "update",
        state=ticket.state,
        effects=(SYNC, comment(text), CARD, thread_note(text)),
        note="cleared (on_resolve: comment)",
    )


def _plan_test(
    ticket: TicketSnapshot | None, note: GroupNotification, new_digest: str, test: TestHandling
) -> AlertPlan:
    """A test notification opens no Jira issue: ignored, or shown as a card that says it is a test (a ticket that is
    closed from the start, so nothing waits on it and nobody is reminded of it)."""
    if test == "ignore":
        return AlertPlan("ignore", note="a test notification (test_notifications: ignore)")
    if ticket is not None and not ticket.test and ticket.state is not TicketState.CLOSED:
        return AlertPlan("ignore", note="a test notification for a problem with an open ticket; nothing to do")
    if ticket is not None and ticket.test:
        if ticket.digest == new_digest:
            return AlertPlan("ignore", note="the same test notification again")
        return AlertPlan("update", state=ticket.state, effects=(CARD,), note="test notification updated", test=True)
    return AlertPlan(
        "create",
        state=TicketState.CLOSED,
        effects=(CARD,),
        note=f"test notification from {note.source.value}: a test card, no Jira issue (test_notifications: card)",
        test=True,
    )
