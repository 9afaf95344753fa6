"""The ``ticket.new`` job: a ticket someone opened by hand with ``/triage new`` (workflows.commands plans it).

The form's submission was stored before Slack got its ack; here it becomes a ticket, in one transaction with
its history and the jobs that create the Jira issue and post the card. The submission's event id is the
ticket's identity (its dedup key), so running this job twice opens one ticket.
"""

from __future__ import annotations

import json

from bot.db.models import InboundEvent
from bot.jobs.kinds import JobKind
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.apply import open_ticket as store_opened
from bot.tickets.clicks import tell
from bot.tickets.store import latest_for, opened_by_hand
from workflows.commands import NOT_ALLOWED, NewTicket, plan_new_ticket

KIND = JobKind.TICKET_NEW
SOURCE = "slack"


def open_ticket(runtime: Runtime, ctx: JobContext) -> None:
    event_id = ctx.job.payload["event_id"]
    people = frozenset().union(*(runtime.slack.members(a.users, strict=True) for a in runtime.policy.audiences()))
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        form = json.loads(event.body)
        dedup_key = f"slack:new:{event_id}"
        if latest_for(session, dedup_key) is not None:
            return
        entered = NewTicket(form["title"], form["description"], form["priority"], form["team"])
        opening = plan_new_ticket(entered, form["user"], runtime.policy, allowed=form["user"] in people)
        if opening is None:
            if form.get("channel"):
                tell(session, form["channel"], form["user"], NOT_ALLOWED)
            return
        ticket = opened_by_hand(
            dedup_key,
            SOURCE,
            opening,
            title=entered.title,
            priority=entered.priority,
            description=entered.description,
            first_event_at=event.received_at,
        )
        ticket_id = store_opened(session, runtime.settings, ticket, opening.plan)
        if form.get("channel"):
            tell(
                session,
                form["channel"],
                form["user"],
                f"Opened ticket #{ticket_id}; its card is in <#{opening.channel}>.",
            )
