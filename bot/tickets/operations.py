"""What operators read and do outside Slack (the web console): tickets found by filter, a ticket's whole
timeline, the queue at a glance, and failed jobs run again or given up with who did it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import ColumnElement, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import Job, JobStatus, Ticket, TicketCard, TicketHistory
from bot.jobs import queue
from bot.jobs.kinds import SYSTEM_LANE_PREFIXES, ticket_of_lane
from bot.tickets.store import record

log = logging.getLogger("triage.operations")

SEARCH_LIMIT = 200  # characters of a search
PER_TICKET_LANES = (*SYSTEM_LANE_PREFIXES, "click:", "jira-in:")


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets to list: each given filter narrows; ``text`` is found in the title, the Jira key, the report
    reference or the bot's number."""

    state: str | None = None
    team: str | None = None
    source: str | None = None
    text: str | None = None
    limit: int = 100


def tickets(session: Session, query: TicketQuery) -> list[Ticket]:
    """The newest tickets that match ``query``."""
    found = select(Ticket)
    if query.state:
        found = found.where(Ticket.state == query.state)
    if query.team:
        found = found.where(Ticket.team == query.team) if query.team != "-" else found.where(col(Ticket.team).is_(None))
    if query.source:
        found = found.where(Ticket.source == query.source)
    text = (query.text or "").strip()[:SEARCH_LIMIT]
    if text:
        literal = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        needle = f"%{literal}%"
        matches: list[ColumnElement[bool]] = [
            func.lower(column).like(needle, escape="\\")
            for column in (
                col(Ticket.title),
                func.coalesce(col(Ticket.jira_key), ""),
                func.coalesce(col(Ticket.report_ref), ""),
            )
        ]
        number = text.lstrip("#")
        if number.isdigit() and len(number) < 18:
            matches.append(col(Ticket.id) == int(number))
        found = found.where(or_(*matches))
    return list(session.exec(found.order_by(col(Ticket.id).desc()).limit(query.limit)))


def sources(session: Session) -> list[str]:
    """Every source tickets came from, for a filter's choices."""
    return sorted(str(s) for s in session.exec(select(Ticket.source).distinct()))


@dataclass(frozen=True)
class Timeline:
    ticket: Ticket
    history: list[TicketHistory]
    copies: list[TicketCard]  # the card's copies in other channels (the original is on the ticket)
    jobs: list[Job] = field(default_factory=list)  # the ticket's jobs not done yet (pending, running, failed)


def timeline(session: Session, ticket_id: int) -> Timeline | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None
    history = session.exec(
        select(TicketHistory).where(TicketHistory.ticket_id == ticket_id).order_by(col(TicketHistory.id))
    )
    copies = session.exec(select(TicketCard).where(TicketCard.ticket_id == ticket_id).order_by(col(TicketCard.id)))
    lanes = [f"{prefix}{ticket_id}" for prefix in PER_TICKET_LANES]
    unfinished = session.exec(
        select(Job).where(col(Job.lane).in_(lanes), col(Job.status) != JobStatus.DONE).order_by(col(Job.id)).limit(100)
    )
    return Timeline(ticket, list(history), list(copies), list(unfinished))


def reports_of(session: Session, customer_sub: str, limit: int = 20) -> list[Ticket]:
    """A customer's newest reports."""
    query = select(Ticket).where(Ticket.customer_sub == customer_sub, col(Ticket.report_ref).is_not(None))
    return list(session.exec(query.order_by(col(Ticket.id).desc()).limit(limit)))


@dataclass(frozen=True)
class QueueOverview:
    counts: dict[str, int]  # by status
    by_kind: dict[tuple[str, str], int]  # by (status, kind)
    oldest_pending_age: float | None  # seconds
    failed: list[Job]  # dead and refused, oldest first
    now: datetime


def queue_overview(session: Session, limit: int = 200) -> QueueOverview:
    stats = queue.stats(session)
    failed = queue.list_jobs(session, [JobStatus.DEAD.value, JobStatus.REFUSED.value], limit)
    return QueueOverview(stats.counts, queue.counts_by_kind(session), stats.oldest_pending_age, failed, utcnow())


def _ticket_of(lane: str) -> int | None:
    if lane.startswith(PER_TICKET_LANES):
        try:
            return ticket_of_lane(lane)
        except ValueError:
            return None
    return None


def retry_job(engine: Engine, job_id: int, *, by: str) -> bool:
    """Run a dead or refused job again (``queue.retry``); who asked is kept on the job and in its ticket's history."""
    return _operate(engine, job_id, by, "retried", queue.retry)


def drop_job(engine: Engine, job_id: int, *, by: str) -> bool:
    """Give up on a dead or refused job (``queue.drop``); who did is kept on the job and in its ticket's history."""
    return _operate(engine, job_id, by, "dropped", queue.drop)


class JobOperation(Protocol):
    def __call__(self, engine: Engine, job_id: int, *, by: str | None = None) -> bool: ...


def _operate(engine: Engine, job_id: int, by: str, done: str, act: JobOperation) -> bool:
    with Session(engine) as session:
        job = session.get(Job, job_id)
        kind, lane = (job.kind, job.lane) if job is not None else ("", "")
    if job is None or not act(engine, job_id, by=by):
        return False
    log.info(f"job {done}", extra={"job": job_id, "kind": kind, "lane": lane, "by": by})
    ticket_id = _ticket_of(lane)
    if ticket_id is not None:
        with transaction(engine) as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None:
                record(session, ticket, actor=by, via="console", note=f"{done} failed job {job_id} ({kind})")
    return True
