"""The durable job queue, in the same database as everything else.

Jobs are written in the transaction that records the event they come from, so an acknowledged event
always has its work queued. A lane (one per ticket or per alert group) runs one job at a time in id order:
a job is claimable only when no earlier job of its lane is pending or running. Claims take a lease; a
worker that dies loses its lease and the job is claimed again. On PostgreSQL, ``FOR UPDATE SKIP LOCKED``
lets many workers and replicas claim side by side; on SQLite, write transactions are serialised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from bot.clock import utcnow
from bot.db.engine import reading, transaction
from bot.db.models import InboundEvent, Job, JobStatus

ERROR_LIMIT = 4000
# Said of a job taken again because its worker stopped renewing its lease (killed, hung, cut off): what that worker
# had sent may still be on its way.
LEASE_EXPIRED = "lease expired: its worker stopped answering before the job finished; taken again"
# Never waits behind routine work: a new ticket's issue and first card. These call an outside system and spend
# most of their time waiting for it, so they go even before the bot's own urgent work: the two then overlap.
OPENING = -1
URGENT = 0  # decides on a new problem, answers a person: never waits behind routine work
ROUTINE = 1  # brings a known ticket up to date
# A job in one of these states keeps the later jobs of its lane waiting.
HOLDING = (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.DEAD)
# Ids are handed out at insert but seen at commit: on PostgreSQL a job's insert takes its lane's lock, so that a
# job inserted later cannot commit first and run before an earlier job of its lane.
_LANE_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:lane, 0))")
_PUSH = insert(Job.__table__).values(status=JobStatus.PENDING.value, attempts=0)  # type: ignore[attr-defined]


class LostLease(Exception):
    """Another worker owns this job now (our lease ran out); our result must not be saved."""


def enqueue(
    session: Session,
    *,
    kind: str,
    lane: str,
    payload: dict[str, Any] | None = None,
    delay: float = 0.0,
    coalesce: bool = False,
    priority: int = ROUTINE,
) -> Job | None:
    """Add a job in the caller's transaction. With ``coalesce``, skip it when the lane already has a
    pending job of the same kind (jobs that render from current state need only one pending copy)."""
    _lock_lane(session, lane)
    if coalesce:
        # FOR UPDATE: a worker claiming that job at this moment would otherwise read the ticket before this
        # transaction commits, and the change made here would never be rendered. With the lock, either the
        # claim waits for this commit, or this check waits for the claim and then sees the job is running.
        already = session.exec(
            select(Job.id)
            .where(Job.lane == lane, Job.kind == kind, Job.status == JobStatus.PENDING)
            .limit(1)
            .with_for_update()
        ).first()
        if already is not None:
            return None
    job = Job(
        kind=kind,
        lane=lane,
        payload=payload or {},
        run_after=utcnow() + timedelta(seconds=delay),
        priority=priority,
    )
    session.add(job)
    return job


def push(session: Session, *, kind: str, lane: str, payload: dict[str, Any], priority: int = ROUTINE) -> None:
    """``enqueue`` for the intake's hot path: one INSERT, no ORM object, no coalescing."""
    _lock_lane(session, lane)
    now = utcnow()
    row = {"kind": kind, "lane": lane, "payload": payload, "priority": priority, "run_after": now, "created_at": now}
    session.connection().execute(_PUSH, row)


def _lock_lane(session: Session, lane: str) -> None:
    """On PostgreSQL, hold the lane's lock until commit (see _LANE_LOCK); SQLite needs none: one writer at a time."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_LANE_LOCK, {"lane": lane})


def claim(
    engine: Engine, worker_id: str, lease_seconds: float, skip_lanes: Sequence[str] = (), *, urgent_only: bool = False
) -> Job | None:
    """Take the most urgent runnable job whose lane is free (the longest ready first), or None. ``skip_lanes``:
    lane prefixes not to take now (``jira:`` while Jira asked everyone to wait); ``urgent_only``: leave routine
    work to other workers."""
    now = utcnow()
    earlier = aliased(Job)
    # One EXISTS per status, not one with IN: SQLite 3.40 (Debian 12's) answers the IN form wrongly, finding no
    # job at all, once ANALYZE has given it statistics (tests/bot/jobs/test_queue.py has the case).
    blocked = or_(
        *(
            exists().where(
                col(earlier.lane) == col(Job.lane), col(earlier.status) == status, col(earlier.id) < col(Job.id)
            )
            for status in HOLDING
        )
    )
    query = (
        select(Job)
        .where(col(Job.status) == JobStatus.PENDING, col(Job.run_after) <= now, ~blocked)
        .where(*(~col(Job.lane).startswith(prefix, autoescape=True) for prefix in skip_lanes))
        .where(*((col(Job.priority) <= URGENT,) if urgent_only else ()))
        .order_by(col(Job.priority), col(Job.run_after), col(Job.id))
        .limit(1)
    )
    expired = and_(col(Job.status) == JobStatus.RUNNING, col(Job.locked_until) < now)
    if engine.dialect.name == "sqlite":
        # SQLite has one writer: look first, without queueing for it, so that idle workers write nothing.
        with reading(engine) as session:
            if session.exec(query).first() is None and session.exec(select(Job.id).where(expired)).first() is None:
                return None
    with transaction(engine) as session:
        # Jobs whose worker died: their lease ran out, so they are anyone's again (the old owner is fenced off).
        session.execute(
            update(Job).where(expired).values(status=JobStatus.PENDING, locked_until=None, last_error=LEASE_EXPIRED)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=Job)
        job = session.exec(query).first()
        if job is None:
            return None
        job.status = JobStatus.RUNNING
        job.locked_by = worker_id
        job.locked_until = now + timedelta(seconds=lease_seconds)
        job.attempts += 1
        session.add(job)
        session.flush()
        session.refresh(job)
        session.expunge(job)
        return job


def hurry(engine: Engine, lane_prefix: str) -> int:
    """Jobs of lanes starting with ``lane_prefix`` that wait to retry after failing run now: their outside system
    has just answered again (an outage ended), so none sits out the rest of its own backoff. The system's budget
    still paces them."""
    now = utcnow()
    with transaction(engine) as session:
        result = session.execute(
            update(Job)
            .where(
                col(Job.status) == JobStatus.PENDING,
                col(Job.run_after) > now,
                col(Job.attempts) > 0,
                col(Job.lane).startswith(lane_prefix, autoescape=True),
            )
            .values(run_after=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def followers(session: Session, job: Job, limit: int) -> list[Job]:
    """The pending jobs of ``job``'s lane and kind queued right after it (none of another kind in between), for a
    handler that applies them together with ``job`` in one transaction (``complete_followers`` marks them done
    there). Nobody else can claim them meanwhile: ``job`` is running, and it holds their lane."""
    later = session.exec(
        select(Job)
        .where(col(Job.lane) == job.lane, col(Job.status) == JobStatus.PENDING, col(Job.id) > job.id)
        .order_by(col(Job.id))
        .limit(limit)
        .with_for_update()
    ).all()
    run: list[Job] = []
    for other in later:  # (none is running or dead: the lane is job's)
        if other.kind != job.kind:
            break
        run.append(other)
    return run


def complete_followers(session: Session, jobs: Sequence[Job]) -> None:
    if jobs:
        session.execute(
            update(Job)
            .where(col(Job.id).in_([j.id for j in jobs]), col(Job.status) == JobStatus.PENDING)
            .values(status=JobStatus.DONE, finished_at=utcnow(), attempts=Job.attempts + 1)
        )


def _fenced(session: Session, job: Job, worker_id: str, **values: Any) -> None:
    result = session.execute(
        update(Job)
        .where(col(Job.id) == job.id, col(Job.locked_by) == worker_id, col(Job.status) == JobStatus.RUNNING)
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LostLease(f"job {job.id} is no longer ours")


def complete(session: Session, job: Job, worker_id: str) -> None:
    """Mark done, in the caller's transaction, so the job's own writes and its completion commit together."""
    _fenced(session, job, worker_id, status=JobStatus.DONE, finished_at=utcnow(), locked_until=None, last_error=None)


def fail(
    engine: Engine,
    job: Job,
    worker_id: str,
    error: str,
    retry_in: float | None,
    count_attempt: bool = True,
    holds: bool = True,
) -> None:
    """Schedule a retry in ``retry_in`` seconds, or when None keep the job as dead (``holds``: the later jobs of
    its lane wait for it) or as refused (they run). ``count_attempt=False`` gives the attempt back (the server
    asked us to wait: nothing was tried, nothing is uncertain)."""
    values: dict[str, Any] = {"last_error": error[:ERROR_LIMIT], "locked_until": None}
    if not count_attempt:
        values["attempts"] = max(0, job.attempts - 1)
    if retry_in is None:
        values.update(status=JobStatus.DEAD if holds else JobStatus.REFUSED, finished_at=utcnow())
    else:
        values.update(status=JobStatus.PENDING, run_after=utcnow() + timedelta(seconds=retry_in))
    with transaction(engine) as session:
        _fenced(session, job, worker_id, **values)


def extend_leases(engine: Engine, worker_id: str, job_ids: Sequence[int], lease_seconds: float) -> None:
    if not job_ids:
        return
    with transaction(engine) as session:
        session.execute(
            update(Job)
            .where(col(Job.id).in_(job_ids), col(Job.locked_by) == worker_id, col(Job.status) == JobStatus.RUNNING)
            .values(locked_until=utcnow() + timedelta(seconds=lease_seconds))
        )


FAILED = (JobStatus.DEAD, JobStatus.REFUSED)


def _by(who: str | None) -> str:
    return f" by {who}" if who else ""


def retry(engine: Engine, job_id: int, *, by: str | None = None) -> bool:
    """Put a dead or refused job back in the queue with a fresh attempt budget. A dead job runs again where it
    stands (it held its lane: nothing after it ran), its count restarting at 1, not 0: it did run before, so
    handlers that look for the result of an uncertain attempt still look. A refused job held nothing, so later
    jobs of its lane may be running: it goes again as a new job at the lane's end, never beside them. ``by``: who
    asked (said in the job's last error: the record of what was done to it)."""
    with transaction(engine) as session:
        job = session.exec(select(Job).where(Job.id == job_id, col(Job.status).in_(FAILED)).with_for_update()).first()
        if job is None:
            return False
        if job.status == JobStatus.DEAD:
            job.status, job.attempts, job.run_after, job.finished_at = JobStatus.PENDING, 1, utcnow(), None
            if by:
                job.last_error = f"{job.last_error or ''} [retried{_by(by)}]"[-ERROR_LIMIT:]
            session.add(job)
            return True
        again = enqueue(session, kind=job.kind, lane=job.lane, payload=dict(job.payload))
        assert again is not None
        session.flush()
        job.status, job.finished_at = JobStatus.DONE, utcnow()
        job.last_error = f"{job.last_error or ''} [retried{_by(by)} as job {again.id}]"[-ERROR_LIMIT:]
        session.add(job)
        return True


def drop(engine: Engine, job_id: int, *, by: str | None = None) -> bool:
    """Give up on a dead or refused job for good (it stays in the table as done, with its last error and who
    dropped it)."""
    with transaction(engine) as session:
        result = session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status).in_(FAILED))
            .values(
                status=JobStatus.DONE,
                finished_at=utcnow(),
                last_error=func.coalesce(Job.last_error, "") + f" [dropped{_by(by or 'an operator')}]",
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


PURGE_BATCH = 1000


def purge(
    engine: Engine, *, done_jobs_older_than: timedelta, events_older_than: timedelta, batch: int = PURGE_BATCH
) -> tuple[int, int]:
    """Forget finished jobs and old inbound events (their tickets and history stay), ``batch`` rows per
    transaction: a week of a storm's jobs goes without holding the table (or SQLite's one writer) for long."""
    finished = and_(col(Job.status) == JobStatus.DONE, col(Job.finished_at) < utcnow() - done_jobs_older_than)
    jobs = _delete_in_batches(engine, Job, finished, batch)
    old = col(InboundEvent.received_at) < utcnow() - events_older_than
    events = _delete_in_batches(engine, InboundEvent, old, batch)
    return jobs, events


def _delete_in_batches(engine: Engine, table: type[Job] | type[InboundEvent], where: Any, batch: int) -> int:
    deleted = 0
    while True:
        with transaction(engine) as session:
            ids = select(table.id).where(where).order_by(col(table.id)).limit(batch).scalar_subquery()
            count = int(session.execute(delete(table).where(col(table.id).in_(ids))).rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < batch:
            return deleted


@dataclass(frozen=True)
class QueueStats:
    counts: dict[str, int]
    oldest_pending_age: float | None


def stats(session: Session) -> QueueStats:
    rows = session.exec(select(Job.status, func.count()).group_by(Job.status)).all()
    oldest = session.exec(select(func.min(Job.created_at)).where(Job.status == JobStatus.PENDING)).first()
    age = (utcnow() - oldest).total_seconds() if oldest is not None else None
    return QueueStats(counts={str(s): int(n) for s, n in rows}, oldest_pending_age=age)


def counts_by_kind(session: Session) -> dict[tuple[str, str], int]:
    """How many jobs there are of each (status, kind)."""
    rows = session.exec(select(Job.status, Job.kind, func.count()).group_by(Job.status, Job.kind)).all()
    return {(str(status), str(kind)): int(n) for status, kind, n in rows}


def list_jobs(session: Session, statuses: Sequence[str], limit: int = 100) -> list[Job]:
    query = select(Job).where(col(Job.status).in_(statuses)).order_by(col(Job.id)).limit(limit)
    return list(session.exec(query))
