"""Forgetting what is no longer needed: finished jobs, old inbound request bodies, old Idempotency-Key answers.
Tickets, their history and their cards stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import col

from bot import queue
from bot.clock import utcnow
from bot.db import transaction
from bot.models import IdempotentRequest
from bot.runtime import Runtime

KEEP_DONE = timedelta(days=7)
IDEMPOTENCY_KEPT = timedelta(days=1)  # how long a report's Idempotency-Key answers a retry


def purge(runtime: Runtime) -> dict[str, int]:
    retention = timedelta(days=runtime.settings.event_retention_days)
    jobs, events = queue.purge(
        runtime.engine, done_jobs_older_than=min(KEEP_DONE, retention), events_older_than=retention
    )
    with transaction(runtime.engine) as session:
        keys = session.execute(
            delete(IdempotentRequest).where(col(IdempotentRequest.created_at) < utcnow() - IDEMPOTENCY_KEPT)
        )
    return {"jobs": jobs, "events": events, "idempotency_keys": int(keys.rowcount)}  # type: ignore[attr-defined]
