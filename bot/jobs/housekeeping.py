"""Forgetting what is no longer needed: finished jobs, old inbound request bodies, old Idempotency-Key answers.
Tickets, their history and their cards stay."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.clock import utcnow
from bot.db.engine import transaction
from bot.db.models import IdempotentRequest
from bot.jobs import queue

log = logging.getLogger("triage.housekeeping")
SECONDS = 600.0  # how often it runs
KEEP_DONE = timedelta(days=7)
IDEMPOTENCY_KEPT = timedelta(days=1)  # how long a report's Idempotency-Key answers a retry


def purge(engine: Engine, retention_days: int) -> dict[str, int]:
    retention = timedelta(days=retention_days)
    jobs, events = queue.purge(engine, done_jobs_older_than=min(KEEP_DONE, retention), events_older_than=retention)
    with transaction(engine) as session:
        keys = session.execute(
            delete(IdempotentRequest).where(col(IdempotentRequest.created_at) < utcnow() - IDEMPOTENCY_KEPT)
        )
    purged = {"jobs": jobs, "events": events, "idempotency_keys": int(keys.rowcount)}  # type: ignore[attr-defined]
    if any(purged.values()):
        log.info("purged finished jobs, old events and idempotency keys", extra=purged)
    return purged
