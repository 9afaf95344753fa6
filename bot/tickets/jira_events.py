"""The ``jira.event`` job: a change someone made in Jira moves the ticket and its card.

Runs in the ticket's lane, after the bot's own Jira work for that ticket. Changes made by the bot's own
Jira account are skipped, and a move to the state the ticket is already in is no move: together that keeps
Jira and the bot from echoing each other. Only Slack effects are queued, never Jira ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlmodel import select

from bot.db.models import InboundEvent, Person, Ticket, TicketHistory
from bot.jobs import queue
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.alerts import ticket_of_lane
from bot.tickets.reports import send_mail
from bot.tickets.store import move, record, show_in
from workflows.escaping import one_line, truncate
from workflows.lifecycle import EffectKind
from workflows.reports import mask_email
from workflows.routing import card_channels
from workflows.states import TicketState

KIND = "jira.event"
CLOSED_IN_JIRA = "Our team has dealt with your report and closed it."
COMMENT_PREVIEW = 500


def _actor(data: dict[str, Any]) -> tuple[set[str], str]:
    user = data.get("user") or (data.get("comment") or {}).get("author") or {}
    ids = {str(user[k]) for k in ("accountId", "name", "key") if user.get(k)}
    return ids, str(user.get("displayName") or user.get("name") or "someone in Jira")


def handle_jira_event(runtime: Runtime, ctx: JobContext) -> None:
    event_id = json.loads(ctx.job.payload)["event_id"]
    own = runtime.jira.own_identity()  # outside the transaction: it may call Jira once
    ticket_id = ticket_of_lane(ctx.job.lane)
    with ctx.final() as session:
        event = session.get(InboundEvent, event_id)
        # Locked: clicks and alert processing may change the same ticket from other lanes.
        ticket = session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update()).first()
        if event is None or ticket is None:
            raise PermanentError(f"event {event_id} or ticket {ticket_id} is gone")
        data = json.loads(event.body)
        ids, name = _actor(data)
        if ids & own:
            return  # our own change coming back: nothing new
        notes: list[str] = []
        for item in (data.get("changelog") or {}).get("items") or []:
            field = str(item.get("fieldId") or item.get("field") or "").lower()
            if field == "status":
                to_name = str(item.get("toString") or "")
                state = runtime.policy.jira.state_of_status(to_name)
                if state is None:
                    notes.append(f"{name} moved the Jira issue to {to_name}, a status the policy does not map.")
                elif TicketState(state) is not TicketState(ticket.state):
                    move(
                        session, ticket, TicketState(state), actor=name, via="jira", note=f"moved to {to_name} in Jira"
                    )
                    show_in(session, ticket, card_channels(runtime.policy, ticket.team, TicketState(state)))
                    if TicketState(state) is TicketState.CLOSED and ticket.customer_email:
                        # Closed in Jira: the customer is told all the same, in the template's own words.
                        send_mail(session, runtime.settings, ticket, "closed", {"message": CLOSED_IN_JIRA})
                    notes.append(f"{name} moved this to {TicketState(state).label} in Jira ({to_name}).")
            elif field == "assignee":
                who = item.get("toString") or "nobody"
                # The Slack side follows when we know the person (someone assigned from Slack before).
                account = item.get("to")
                person = (
                    session.exec(select(Person).where(Person.jira_account == str(account))).first() if account else None
                )
                ticket.assignee = person.slack_user if person else None
                session.add(ticket)
                record(session, ticket, actor=name, via="jira", note=f"assigned to {who} in Jira")
                notes.append(f"{name} assigned the Jira issue to {who}.")
        comment = data.get("comment")
        if isinstance(comment, dict) and isinstance(comment.get("body"), str):
            # Jira may tell of one comment twice (issue_commented and comment_created): note it once.
            seen = f"commented in Jira (comment {comment.get('id')})"
            already = session.exec(
                select(TicketHistory.id).where(TicketHistory.ticket_id == ticket_id, TicketHistory.note == seen)
            ).first()
            if already is None:
                record(session, ticket, actor=name, via="jira", note=seen)
                preview = truncate(one_line(comment["body"]), COMMENT_PREVIEW)
                if ticket.customer_email:  # a comment quoting the customer's address: not into Slack
                    preview = re.sub(
                        re.escape(ticket.customer_email), mask_email(ticket.customer_email), preview, flags=re.I
                    )
                notes.append(f"{name} commented in Jira: {preview}")
        if not notes:
            return
        lane = ctx.job.lane
        queue.enqueue(session, kind=EffectKind.SLACK_CARD.value, lane=lane, coalesce=True)
        for text in notes:
            queue.enqueue(session, kind=EffectKind.SLACK_NOTE.value, lane=lane, payload={"text": text})
