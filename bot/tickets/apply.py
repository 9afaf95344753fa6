"""Applying a plan (workflows.plans) to a stored ticket, in the caller's transaction: its fields, its history
(moves among it), the channels its card must be in, and its effects queued in its lanes."""

from __future__ import annotations

from sqlmodel import Session

from bot.db.models import Ticket
from bot.settings import Settings
from bot.tickets.effects import queue_effects
from bot.tickets.email import send_mail
from bot.tickets.store import move, record, show_in
from workflows.effects import EffectKind
from workflows.plans import Plan


def open_ticket(session: Session, settings: Settings, ticket: Ticket, plan: Plan) -> int:
    """Store a new ticket (its row already in the state the plan opens it in), record its opening and queue its
    effects; its id."""
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    for entry in plan.history:
        record(session, ticket, actor=entry.actor, via=entry.via, note=entry.note, to_state=entry.to)
    _queue(session, settings, ticket, plan, opening=True)
    return ticket.id


def apply(session: Session, settings: Settings, ticket: Ticket, plan: Plan) -> None:
    """Make ``ticket`` what ``plan`` says and queue its effects. (``plan.tell`` is the caller's: only it knows
    where the person who acted is.)"""
    assert ticket.id is not None
    if plan.set_team:
        ticket.team = plan.team
    if plan.set_assignee:
        ticket.assignee, ticket.assignee_name = plan.assignee, plan.assignee_name
    for entry in plan.history:
        if entry.to is not None:
            move(session, ticket, entry.to, actor=entry.actor, via=entry.via, note=entry.note)
        else:
            record(session, ticket, actor=entry.actor, via=entry.via, note=entry.note)
    if plan.in_jira:
        # Jira shows what it changed already: the reconciliation must not send it back, nor undo it. (Only what
        # Jira changed: a move of ours still on its way to Jira must still go.)
        if plan.to is not None:
            ticket.jira_status_synced = ticket.state
        if plan.set_assignee:
            ticket.jira_assignee_synced = ticket.assignee or ""
    session.add(ticket)
    show_in(session, ticket, list(plan.show_in))
    _queue(session, settings, ticket, plan)


def _queue(session: Session, settings: Settings, ticket: Ticket, plan: Plan, *, opening: bool = False) -> None:
    assert ticket.id is not None
    for effect in plan.effects:
        if effect.kind is EffectKind.MAIL_SEND and ticket.customer_email:
            send_mail(session, settings, ticket, str(effect.payload["kind"]), dict(effect.payload["context"]))
    queue_effects(session, ticket.id, [e for e in plan.effects if e.kind is not EffectKind.MAIL_SEND], opening=opening)
