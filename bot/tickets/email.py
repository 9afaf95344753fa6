"""The ``mail.send`` job: one e-mail to a customer, composed from the templates when it is sent.

Queued in the same transaction as what it tells of (a report received, a ticket closed), in the ticket's
``mail:N`` lane so its e-mails go out in order, and never behind its Jira or Slack work. While the SMTP server
is down or answers 4xx the job is retried for as long as that lasts (a patient kind: see bot.jobs.kinds). A 5xx
answer about the message or its recipient is final for that message: said in the card's thread and finished, so
the report's next e-mail is not held up. The Message-ID was fixed when the job was queued, so a send repeated
after a lost "250" is the same message.
"""

from __future__ import annotations

import logging
import secrets
import smtplib

from sqlmodel import Session

from bot.db.models import Ticket
from bot.jobs import queue
from bot.jobs.kinds import JobKind, system_lane
from bot.jobs.retry import TryLater
from bot.jobs.worker import JobContext
from bot.mail.mailer import compose, parse_address
from bot.metrics import MAILS_SENT
from bot.runtime import Runtime
from bot.settings import Settings
from bot.tickets.effects import say
from workflows.effects import System

KIND = JobKind.MAIL_SEND
log = logging.getLogger("triage.mail")


def send(runtime: Runtime, ctx: JobContext) -> None:
    payload = ctx.job.payload
    kind, ticket_id = payload["kind"], int(payload["ticket_id"])
    mailer = runtime.mailer
    if mailer is None or not mailer.enabled:
        if not mail_on(runtime.settings):
            log.warning("e-mail was turned off (TRIAGE_SMTP_URL unset) after this one was queued", extra={"kind": kind})
            return
        # The sandbox's mail catcher lives in the `serve` process; a separate worker cannot reach it.
        raise TryLater("this process has no mail server (a sandbox worker without the catcher); another will send it")
    try:
        parse_address(payload["to"], what="customer address")
    except ValueError:
        _undeliverable(ctx, ticket_id, kind, "the customer's address is not one a mail server would take")
        return
    # The sender, templates and Message-ID are ours: a problem there is a configuration error, kept as dead.
    message = compose(
        kind,
        payload["to"],
        payload["context"],
        templates=runtime.mail_templates,
        sender=runtime.settings.mail_from,
        message_id=payload["message_id"],
    )
    try:
        mailer.send(message)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as problem:
        codes = (
            [c for c, _ in problem.recipients.values()]
            if isinstance(problem, smtplib.SMTPRecipientsRefused)
            else [problem.smtp_code]
        )
        if not all(500 <= c < 600 for c in codes):
            raise
        _undeliverable(ctx, ticket_id, kind, f"the mail server refused it ({', '.join(map(str, codes))})")
        return
    MAILS_SENT.labels(kind).inc()
    log.info("e-mail sent", extra={"kind": kind, "ticket_id": ticket_id})


def _undeliverable(ctx: JobContext, ticket_id: int, kind: str, why: str) -> None:
    """Give up on this e-mail for good, where the team will see it (no address in logs or Slack)."""
    log.error("e-mail to a customer cannot be delivered", extra={"kind": kind, "ticket_id": ticket_id, "why": why})
    with ctx.final() as session:
        say(session, ticket_id, f"The {kind} e-mail to the customer could not be sent: {why}. Reach them another way.")


def mail_on(settings: Settings) -> bool:
    """E-mail is sent when an SMTP server is configured (or the sandbox's catcher stands in for one)."""
    return settings.smtp_url is not None or settings.mail_sandbox


def writes_to_customer(settings: Settings, ticket: Ticket) -> bool:
    """Is there a customer this ticket's e-mails reach? (Then Close asks for the message to them.)"""
    return ticket.customer_email is not None and mail_on(settings)


def send_mail(session: Session, settings: Settings, ticket: Ticket, kind: str, context: dict[str, str]) -> None:
    """Queue an e-mail to the ticket's customer. The ticket's mail lane keeps its e-mails in order; the Message-ID
    is fixed here, so a retried send is recognisable as the same message."""
    if not mail_on(settings):
        return
    assert ticket.id is not None
    assert ticket.report_ref
    assert ticket.customer_email
    queue.enqueue(
        session,
        kind=KIND,
        lane=system_lane(System.MAIL, ticket.id),
        payload={
            "ticket_id": ticket.id,
            "kind": kind,
            "to": ticket.customer_email,
            "context": {"reference": ticket.report_ref, "subject": ticket.title, **context},
            "message_id": f"{ticket.report_ref}.{kind}.{secrets.token_hex(6)}",
        },
    )
