"""Customer reports: a checked report becomes a ticket, in one transaction with its attachments, its history, the
jobs that open the Jira issue, post the card, attach the files and e-mail the receipt, and the answer kept for
its ``Idempotency-Key``. The answer (201) goes out only after that commit.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.clients.identity import Customer
from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import IdempotentRequest, InboundEvent, ReportAttachment, Ticket
from bot.jobs.housekeeping import IDEMPOTENCY_KEPT
from bot.runtime import Runtime
from bot.tickets.apply import open_ticket as store_opened
from bot.tickets.email import mail_on
from bot.tickets.store import opened_by_hand
from workflows.reports import SOURCE, STATUS_TEXT, ReportIn, plan_report, route, unique_names
from workflows.states import TicketState

RATE_WINDOW = timedelta(minutes=1)
_REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U to misread


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many reports; try again in {retry_after} s")
        self.retry_after = retry_after


class KeyReused(Exception):
    """The same Idempotency-Key came with a different request."""


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def new_reference() -> str:
    return "R-" + "".join(secrets.choice(_REF_ALPHABET) for _ in range(10))


def public(ticket: Ticket) -> dict[str, Any]:
    """What the customer may know of their report."""
    state = TicketState(ticket.state)
    return {
        "id": ticket.report_ref,
        "subject": ticket.title,
        "status": state.value,
        "status_text": STATUS_TEXT[state],
        "created_at": ticket.created_at.isoformat(),
        "updated_at": (ticket.state_changed_at or ticket.created_at).isoformat(),
    }


def digest(report: ReportIn) -> str:
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


def accept(runtime: Runtime, customer: Customer, report: ReportIn, idempotency_key: str | None) -> Answer:
    """Store the report as a ticket with everything that follows from it; replay the first answer for a key."""
    request_digest = digest(report)
    try:
        with transaction(runtime.engine) as session:
            if not runtime.settings.is_sqlite:
                # One customer's reports one at a time (SQLite writers already are): the rate limit's count and
                # the key's lookup then see every earlier request of theirs.
                session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:sub, 1))"), {"sub": customer.sub})
            if idempotency_key is not None:
                earlier = _earlier(session, customer.sub, idempotency_key, request_digest)
                if earlier is not None:
                    return earlier
            _check_rate(session, runtime, customer.sub)
            ticket = _open_ticket(session, runtime, customer, report)
            answer = Answer(201, public(ticket))
            if idempotency_key is not None:
                session.add(
                    IdempotentRequest(
                        customer_sub=customer.sub,
                        key=idempotency_key,
                        request_digest=request_digest,
                        status_code=answer.status_code,
                        response=answer.body,
                    )
                )
            return answer
    except IntegrityError:
        # The same key in two requests at once: the other one committed first; this one is its replay.
        if idempotency_key is None:
            raise
        with Session(runtime.engine) as session:
            earlier = _earlier(session, customer.sub, idempotency_key, request_digest)
        if earlier is None:
            raise
        return earlier


def _earlier(session: Session, sub: str, key: str, request_digest: str) -> Answer | None:
    kept = session.exec(
        select(IdempotentRequest).where(IdempotentRequest.customer_sub == sub, IdempotentRequest.key == key)
    ).first()
    if kept is None:
        return None
    if kept.created_at < utcnow() - IDEMPOTENCY_KEPT:
        session.delete(kept)  # expired: the key starts afresh
        session.flush()
        return None
    if kept.request_digest != request_digest:
        raise KeyReused("this Idempotency-Key was used for a different report")
    return Answer(kept.status_code, kept.response, replayed=True)


def _check_rate(session: Session, runtime: Runtime, sub: str) -> None:
    since = utcnow() - RATE_WINDOW
    recent = session.exec(
        select(func.count(), func.min(Ticket.created_at)).where(
            Ticket.customer_sub == sub, col(Ticket.created_at) >= since
        )
    ).one()
    count, oldest = recent
    if count >= runtime.settings.reports_per_minute:
        wait = (oldest + RATE_WINDOW - utcnow()).total_seconds() if oldest else RATE_WINDOW.total_seconds()
        raise RateLimited(max(1, int(wait) + 1))


def _open_ticket(session: Session, runtime: Runtime, customer: Customer, report: ReportIn) -> Ticket:
    routing = route(runtime.policy, report)
    ref = new_reference()
    now = utcnow()
    stored = report.model_dump(exclude={"attachments"}) | {
        "attachments": [{"filename": a.filename, "content_type": a.content_type} for a in report.attachments],
        "customer": customer.sub,
    }
    event = InboundEvent(source=SOURCE, delivery_id=f"report:{ref}", body=json.dumps(stored))
    session.add(event)
    opening = plan_report(report, routing, customer.sub, has_email=bool(customer.email) and mail_on(runtime.settings))
    fields = {
        "category": report.category,
        "app": report.app.name,
        "version": report.app.version,
        "platform": report.app.platform,
        **{f"meta.{k}": str(v) for k, v in report.metadata.items()},
    }
    dedup_key = f"report:{ref}"
    ticket = opened_by_hand(
        dedup_key,
        SOURCE,
        opening,
        title=report.title,
        priority=routing.priority,
        description=report.description,
        first_event_at=now,
        labels=fields,
        report_ref=ref,
        customer_sub=customer.sub,
        customer_email=customer.email,
        jira_project=routing.project,
        jira_issue_type=routing.issue_type,
    )
    session.add(ticket)
    session.flush()
    assert ticket.id is not None
    for attachment, name in zip(
        report.attachments, unique_names([a.filename for a in report.attachments]), strict=True
    ):
        data = attachment.content
        session.add(
            ReportAttachment(
                ticket_id=ticket.id, filename=name, content_type=attachment.content_type, size=len(data), data=data
            )
        )
    store_opened(session, runtime.settings, ticket, opening.plan)
    return ticket


def lookup(runtime: Runtime, customer: Customer, ref: str) -> dict[str, Any] | None:
    """The customer's own report, or None (someone else's is as unknown as a missing one)."""
    with Session(runtime.engine) as session:
        ticket = session.exec(
            select(Ticket).where(Ticket.report_ref == ref, Ticket.customer_sub == customer.sub)
        ).first()
        return public(ticket) if ticket is not None else None
