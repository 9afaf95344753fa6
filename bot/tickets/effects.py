"""Applying a plan's effects: each goes to its ticket's lane for its system (bot.jobs.kinds), reconciliations
coalesced to one pending job per ticket and system. And what the effect handlers share: the ticket as stored,
its view, and the record of an attempt that may have landed."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlmodel import Session

from bot.clock import utcnow
from bot.db.engine import reading, transaction
from bot.db.models import Job, JobStatus, Ticket
from bot.jobs import queue
from bot.jobs.kinds import JobKind, system_lane, ticket_of_lane
from bot.jobs.retry import PermanentError
from bot.jobs.worker import JobContext
from bot.runtime import Runtime
from bot.tickets.store import view
from workflows.effects import RECONCILED, Effect, EffectKind, raw_note
from workflows.tickets import TicketView

OPENS = frozenset({EffectKind.JIRA_CREATE, EffectKind.SLACK_CARD})  # a new ticket's issue and first card


def queue_effects(session: Session, ticket_id: int, effects: Iterable[Effect], *, opening: bool = False) -> None:
    """Queue ``effects`` in the caller's transaction, each in the ticket's lane for its system. ``opening``: the
    ticket is new, and its issue and first card go before any other work (queue.OPENING)."""
    for effect in effects:
        queue.enqueue(
            session,
            kind=JobKind(effect.kind.value),
            lane=system_lane(effect.system, ticket_id),
            payload=effect.payload,
            coalesce=effect.kind in RECONCILED,
            priority=queue.OPENING if opening and effect.kind in OPENS else queue.ROUTINE,
        )


def say(session: Session, ticket_id: int, mrkdwn: str) -> None:
    """A line in the card's thread, in our own mrkdwn (outside words escaped by the caller)."""
    queue_effects(session, ticket_id, (raw_note(mrkdwn),))


def refused(session: Session, ticket_id: int, kind: JobKind, error: str, payload: dict[str, object]) -> None:
    """Keep an outside system's refusal where `triage-bot jobs` shows it, without holding anything up: a job
    already refused, in the ticket's lane for that system; `triage-bot jobs retry` runs it with ``payload``."""
    job = Job(
        kind=kind,
        lane=system_lane(EffectKind(kind.value).system, ticket_id),
        payload=dict(payload),
        status=JobStatus.REFUSED,
        attempts=1,
        last_error=error[: queue.ERROR_LIMIT],
        finished_at=utcnow(),
    )
    session.add(job)


def require(present: str | None, maker: JobKind, what: str) -> str:
    """What this job needs from an earlier job of its lane (the issue's key, the card's ts). That job ran first
    (a lane runs in order, and a dead job holds it), so missing means it was dropped: this job is refused, not
    retried for ever."""
    if present:
        return present
    raise PermanentError(f"{what} does not exist and nothing is making it ({maker} was dropped)")


def ticket_id_of(ctx: JobContext) -> int:
    return ticket_of_lane(ctx.job.lane)


def load(runtime: Runtime, ticket_id: int) -> Ticket:
    with reading(runtime.engine) as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            raise PermanentError(f"ticket {ticket_id} does not exist")
        session.expunge(ticket)
        return ticket


def shown(runtime: Runtime, ticket: Ticket) -> TicketView:
    return view(ticket, runtime.jira.browse_url(ticket.jira_key) if ticket.jira_key else None)


def record_attempt(
    runtime: Runtime, ticket: Ticket, counter: str, stamp: str | None = None, *, only: bool = False
) -> None:
    """Commit the intent before a non-idempotent call, so that a retry knows to look before acting. ``only``: a
    look found nothing, so the earlier attempts did not land and this is the only one that may."""
    _count_attempts(runtime, ticket, counter, lambda n: 1 if only else n + 1, stamp)


def forget_attempt(runtime: Runtime, ticket: Ticket, counter: str) -> None:
    """The attempt just recorded certainly did not land (refused unprocessed: a 429, a connection never made):
    the retry need not look for it first (a search per retry is what starves a rate-limited Jira)."""
    _count_attempts(runtime, ticket, counter, lambda n: max(0, n - 1))


def attempt_unanswered(runtime: Runtime, ticket: Ticket, stamp: str) -> None:
    """The attempt just recorded may have landed and its answer was lost (an error, a dropped connection, no answer
    in time): its time becomes now, when the bot stopped waiting, so the wait before looking for it (for Jira's
    search index to show it) counts from the latest moment it can have landed that the bot knows of."""
    _count_attempts(runtime, ticket, "jira_create_attempts", lambda n: n, stamp)


def _count_attempts(
    runtime: Runtime, ticket: Ticket, counter: str, change: Callable[[int], int], stamp: str | None = None
) -> None:
    with transaction(runtime.engine) as session:
        row = session.get(Ticket, ticket.id)
        assert row is not None
        setattr(row, counter, change(getattr(row, counter)))
        if stamp:
            setattr(row, stamp, utcnow())
        session.add(row)
