"""The ``jira.event`` job: a change someone made in Jira moves the ticket and its card, as
workflows.jira_changes plans it.

Runs in the ticket's ``jira-in:N`` lane, one change at a time in the order Jira sent them, beside (never behind)
the bot's own Jira work for the ticket. The ticket row is locked: clicks and alert processing change it too.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select

from bot.db.models import InboundEvent, Person, Ticket, TicketHistory
from bot.jobs.kinds import JobKind, ticket_of_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.apply import apply
from bot.tickets.store import view
from workflows.jira_changes import AssigneeChange, Comment, JiraChange, comment_note, plan_jira_change

KIND = JobKind.JIRA_EVENT


def change_of(data: dict[str, Any]) -> JiraChange:
    """The parts of a Jira webhook delivery the planner reads."""
    user = data.get("user") or (data.get("comment") or {}).get("author") or {}
    statuses: list[str] = []
    assignees: list[AssigneeChange] = []
    for item in (data.get("changelog") or {}).get("items") or []:
        field = str(item.get("fieldId") or item.get("field") or "").lower()
        if field == "status":
            statuses.append(str(item.get("toString") or ""))
        elif field == "assignee":
            account = item.get("to")
            assignees.append(AssigneeChange(str(account) if account else None, str(item.get("toString") or "nobody")))
    comment = data.get("comment")
    return JiraChange(
        actor_ids=frozenset(str(user[k]) for k in ("accountId", "name", "key") if user.get(k)),
        actor=str(user.get("displayName") or user.get("name") or "someone in Jira"),
        statuses=tuple(statuses),
        assignees=tuple(assignees),
        comment=Comment(str(comment.get("id")), comment["body"])
        if isinstance(comment, dict) and isinstance(comment.get("body"), str)
        else None,
    )


def handle_jira_event(runtime: Runtime, ctx: JobContext) -> None:
    event_id = ctx.job.payload["event_id"]
    own = frozenset(runtime.jira.own_identity())  # outside the transaction: it may call Jira once
    ticket_id = ticket_of_lane(ctx.job.lane)
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
        if event is None or ticket is None:
            raise PermanentError(f"event {event_id} or ticket {ticket_id} is gone")
        change = change_of(json.loads(event.body))
        accounts = [a.account for a in change.assignees if a.account]
        people = session.exec(select(Person).where(col(Person.jira_account).in_(accounts))).all() if accounts else []
        seen = change.comment is not None and (
            session.exec(
                select(TicketHistory.id).where(
                    TicketHistory.ticket_id == ticket_id, TicketHistory.note == comment_note(change.comment.id)
                )
            ).first()
            is not None
        )
        plan = plan_jira_change(
            view(ticket),
            change,
            policy=runtime.policy,
            own=own,
            slack_user_of={p.jira_account: p.slack_user for p in people if p.jira_account},
            comment_seen=seen,
        )
        if plan.changes_ticket or plan.effects:
            apply(session, runtime.settings, ticket, plan)
