"""The ``jira.event`` job: a change someone made in Jira moves the ticket and its card, as
workflows.jira_changes plans it.

Runs in the ticket's ``jira-in:N`` lane, one change at a time in the order Jira sent them, beside (never behind)
the bot's own Jira work for the ticket. The ticket row is locked: clicks and alert processing change it too.
"""

from __future__ import annotations

from sqlmodel import select

from bot.db.engine import transaction
from bot.db.models import InboundEvent, Ticket, TicketHistory
from bot.jobs.kinds import JobKind, ticket_of_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets import people
from bot.tickets.apply import apply
from bot.tickets.store import view
from workflows.jira_changes import comment_note, plan_jira_change
from workflows.jira_webhooks import JiraWebhook

KIND = JobKind.JIRA_EVENT


def handle_jira_event(runtime: Runtime, ctx: JobContext) -> None:
    event_id = ctx.job.payload["event_id"]
    own = frozenset(runtime.jira.own_identity())  # outside the transaction: it may call Jira once
    ticket_id = ticket_of_lane(ctx.job.lane)
    # Who a new assignee is in Slack, asked outside the transaction (it may call Jira and Slack once each); a
    # person neither can tell goes on the card by the name Jira gave.
    with transaction(runtime.engine) as session:
        event = session.get(InboundEvent, event_id)
        body = event.body if event is not None else None
    assigned = _slack_users(runtime, JiraWebhook.model_validate_json(body)) if body is not None else {}
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
        if event is None or ticket is None:
            raise PermanentError(f"event {event_id} or ticket {ticket_id} is gone")
        change = JiraWebhook.model_validate_json(event.body)  # checked when it came in
        seen = (
            change.comment is not None
            and change.comment.text is not None
            and (
                session.exec(
                    select(TicketHistory.id).where(
                        TicketHistory.ticket_id == ticket_id, TicketHistory.note == comment_note(change.comment.id)
                    )
                ).first()
                is not None
            )
        )
        plan = plan_jira_change(
            view(ticket),
            change,
            policy=runtime.policy,
            own=own,
            slack_user_of=assigned,
            comment_seen=seen,
        )
        if plan.changes_ticket or plan.effects:
            apply(session, runtime.settings, ticket, plan)


def _slack_users(runtime: Runtime, change: JiraWebhook) -> dict[str, str]:
    """The Slack user of each Jira account the change assigns the issue to, where there is one. Data Center's
    webhook carries the assignee's e-mail address; Cloud's does not, and Jira is asked for it."""
    found: dict[str, str] = {}
    shown = change.issue.fields.assignee if change.issue is not None else None
    for account in {str(c.to) for c in change.changes if c.field_id == "assignee" and c.to}:
        email = shown.emailAddress if shown is not None and account in shown.ids else None
        user = people.slack_user_of(runtime, account, email)
        if user is not None:
            found[account] = user
    return found
