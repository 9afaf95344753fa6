"""The escalation scan: reminders for tickets left waiting, queued as thread notes in the ticket's lane.

Every replica may scan; a conditional update makes each reminder one replica's alone.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlmodel import col, select

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Ticket
from bot.jobs import queue
from bot.runtime import Runtime
from bot.tickets.alerts import ticket_lane
from bot.tickets.store import record
from workflows.escalation import WAITING, due, reminder
from workflows.lifecycle import EffectKind
from workflows.policy import Audience
from workflows.states import TicketState

log = logging.getLogger("triage.escalation")


def audience_for(runtime: Runtime, ticket: Ticket) -> Audience:
    """Who should act on a waiting ticket: its team once assigned, the operators before."""
    policy = runtime.policy
    if TicketState(ticket.state) is TicketState.ASSIGNED and ticket.team in policy.teams:
        return policy.teams[ticket.team]
    return policy.operators


def scan(runtime: Runtime) -> int:
    """Queue the reminders that are due; return how many."""
    now = utcnow()
    sent = 0
    with transaction(runtime.engine) as session:
        waiting = session.exec(select(Ticket).where(col(Ticket.state).in_([s.value for s in WAITING]))).all()
        for ticket in waiting:
            env = runtime.policy.environment_named(ticket.environment)
            state = TicketState(ticket.state)
            since = ticket.state_changed_at or ticket.created_at
            if not due(
                state,
                since,
                ticket.escalations,
                ticket.escalated_at,
                env.escalation_interval(),
                env.escalate_limit,
                now,
            ):
                continue
            number = ticket.escalations + 1  # before the update, which also refreshes the loaded row
            claimed = session.execute(
                update(Ticket)
                .where(
                    col(Ticket.id) == ticket.id,
                    col(Ticket.escalations) == ticket.escalations,
                    col(Ticket.state) == ticket.state,
                )
                .values(escalations=number, escalated_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another replica sent this one
            assert ticket.id is not None
            audience = audience_for(runtime, ticket)
            queue.enqueue(
                session,
                kind=EffectKind.SLACK_NOTE.value,
                lane=ticket_lane(ticket.id),
                payload={
                    "text": reminder(state, now - since, number, env.escalate_limit),
                    "mention": list(audience.users),
                    "channel": audience.channel,  # in the thread of their own card
                },
            )
            record(session, ticket, actor="triage-bot", via="escalation", note=f"reminder {number} sent")
            sent += 1
    if sent:
        log.info("escalation reminders queued", extra={"count": sent})
    return sent
