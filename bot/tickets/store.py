"""Reading and writing tickets: from stored rows to the views the renderers and planner use."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.clock import utcnow
from bot.db.models import Ticket, TicketCard, TicketHistory
from workflows.alerts import Alert, GroupNotification
from workflows.escaping import without_nul
from workflows.lifecycle import TicketSnapshot
from workflows.plans import Opening
from workflows.routing import dedup_label
from workflows.states import TicketState
from workflows.tickets import TicketView

ACTOR_LIMIT = 128  # ticket_history.actor


def dedup_hash(dedup_key: str) -> str:
    return hashlib.sha256(dedup_key.encode()).hexdigest()


def latest_for(session: Session, dedup_key: str) -> Ticket | None:
    query = (
        select(Ticket)
        .where(Ticket.dedup_hash == dedup_hash(dedup_key))
        .order_by(col(Ticket.generation).desc())
        .limit(1)
        .with_for_update()  # its writers: clicks and Jira's webhooks change the same row from other lanes
    )
    return session.exec(query).first()


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_IS_OPEN = (
    sa_select(_TICKETS.c.id)
    .where(_TICKETS.c.dedup_hash == bindparam("hash"), _TICKETS.c.state != TicketState.CLOSED.value)
    .limit(1)
)


def is_open(session: Session, dedup_key: str) -> bool:
    """Whether the problem has a ticket that is not closed (a read, without a lock, on the intake's hot path)."""
    return session.connection().execute(_IS_OPEN, {"hash": dedup_hash(dedup_key)}).first() is not None


def opened_by_hand(
    dedup_key: str,
    source: str,
    opening: Opening,
    *,
    title: str,
    priority: str,
    description: str,
    first_event_at: datetime,
    **fields: Any,
) -> Ticket:
    """The row of a ticket a person opened (a report, /triage new): no alerts, "firing" until it is closed."""
    return Ticket(
        dedup_key=dedup_key,
        dedup_hash=dedup_hash(dedup_key),
        source=source,
        environment="default",
        team=opening.team,
        priority=priority,
        state=opening.state.value,
        title=title,
        alert_status="firing",
        digest="",
        annotations={"description": description} if description else {},
        slack_channel=opening.channel,
        first_event_at=first_event_at,
        state_changed_at=utcnow(),
        **fields,
    )


def snapshot(ticket: Ticket) -> TicketSnapshot:
    return TicketSnapshot(
        state=TicketState(ticket.state),
        alert_status="resolved" if ticket.alert_status == "resolved" else "firing",
        digest=ticket.digest,
        closed_at=ticket.closed_at,
        state_before_resolve=TicketState(ticket.state_before_resolve) if ticket.state_before_resolve else None,
        test=ticket.test,
    )


def apply_notification(ticket: Ticket, note: GroupNotification, priority: str, digest: str) -> None:
    """Copy what the ticket shows of a notification onto the row (not the workflow state, and not the title: a
    ticket keeps the one it opened with, whatever the notifications after say)."""
    ticket.title = ticket.title or note.title
    ticket.alert_status = note.status
    ticket.priority = priority
    ticket.digest = digest
    ticket.labels = dict(note.labels)
    ticket.annotations = dict(note.annotations)
    ticket.alerts = [a.to_json() for a in note.alerts]
    ticket.truncated_alerts = note.truncated_alerts
    ticket.external_url = note.external_url
    ticket.updated_at = utcnow()


def move(session: Session, ticket: Ticket, to: TicketState, *, actor: str, via: str, note: str) -> None:
    """Change the workflow state and record the move."""
    before = TicketState(ticket.state)
    if to is TicketState.RESOLVED and before is not TicketState.RESOLVED:
        ticket.state_before_resolve = before.value
    if to is TicketState.CLOSED:
        ticket.closed_at = utcnow()
    elif before is TicketState.CLOSED:
        ticket.closed_at = None
    ticket.state = to.value
    ticket.version += 1
    ticket.updated_at = ticket.state_changed_at = utcnow()
    ticket.escalations, ticket.escalated_at = 0, None
    session.add(ticket)
    record(session, ticket, actor=actor, via=via, note=note, from_state=before.value, to_state=to.value)


def record(
    session: Session,
    ticket: Ticket,
    *,
    actor: str,
    via: str,
    note: str,
    from_state: str | None = None,
    to_state: str | None = None,
) -> None:
    from_state = from_state.value if isinstance(from_state, TicketState) else from_state
    to_state = to_state.value if isinstance(to_state, TicketState) else to_state
    assert ticket.id is not None
    # Names come from outside (a Jira display name): no NUL (PostgreSQL refuses it), within the column.
    actor, note = without_nul(actor)[:ACTOR_LIMIT], without_nul(note)
    session.add(
        TicketHistory(ticket_id=ticket.id, actor=actor, via=via, note=note, from_state=from_state, to_state=to_state)
    )


def view(ticket: Ticket, browse_url: str | None = None) -> TicketView:
    assert ticket.id is not None
    return TicketView(
        id=ticket.id,
        title=ticket.title,
        source=ticket.source,
        environment=ticket.environment,
        priority=ticket.priority,
        state=TicketState(ticket.state),
        team=ticket.team,
        assignee=ticket.assignee,
        assignee_name=ticket.assignee_name,
        alert_status=ticket.alert_status,
        dedup_label=dedup_label(ticket.dedup_key, ticket.generation),
        jira_key=ticket.jira_key,
        jira_url=browse_url,
        labels=dict(ticket.labels),
        annotations=dict(ticket.annotations),
        alerts=tuple(Alert.from_json(a) for a in ticket.alerts),
        truncated_alerts=ticket.truncated_alerts,
        external_url=ticket.external_url,
        created_at=ticket.created_at,
        version=ticket.version,
        report_ref=ticket.report_ref,
        customer_sub=ticket.customer_sub,
        customer_email=ticket.customer_email,
        test=ticket.test,
    )


def find(session: Session, *, key: str | None = None, ticket_id: int | None = None) -> Ticket | None:
    """A ticket by its Jira key or its number."""
    if key is not None:
        return session.exec(select(Ticket).where(Ticket.jira_key == key).order_by(col(Ticket.id).desc())).first()
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def newest(session: Session, states: tuple[TicketState, ...], team: str | None, limit: int) -> list[Ticket]:
    """The newest tickets in ``states`` (of ``team``, if given)."""
    query = select(Ticket).where(col(Ticket.state).in_([s.value for s in states]))
    if team is not None:
        query = query.where(Ticket.team == team)
    return list(session.exec(query.order_by(col(Ticket.id).desc()).limit(limit)))


def show_in(session: Session, ticket: Ticket, channels: list[str]) -> None:
    """Make sure the ticket has a card in each of ``channels`` (a copy; the slack.card job posts it)."""
    assert ticket.id is not None
    for channel in channels:
        if channel == ticket.slack_channel:
            continue
        exists = session.exec(
            select(TicketCard.id).where(TicketCard.ticket_id == ticket.id, TicketCard.channel == channel)
        ).first()
        if exists is None:
            session.add(TicketCard(ticket_id=ticket.id, channel=channel))
