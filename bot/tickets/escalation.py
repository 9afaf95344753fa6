"""The escalation scan: reminders for tickets left waiting (workflows.escalation plans them), queued as thread
notes in the ticket's Slack lane.

Every replica may scan; a conditional update makes each reminder one replica's alone.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlmodel import col, select

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Ticket
from bot.runtime import Runtime
from bot.tickets.apply import apply
from workflows.escalation import WAITING, due, plan_reminder
from workflows.states import TicketState

log = logging.getLogger("triage.escalation")


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
            plan = plan_reminder(runtime.policy, state, ticket.team, now - since, number, env.escalate_limit)
            apply(session, runtime.settings, ticket, plan)
            sent += 1
    if sent:
        log.info("escalation reminders queued", extra={"count": sent})
    return sent
