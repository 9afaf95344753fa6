"""What claiming a job costs as the backlog grows: ``bot.jobs.queue.claim`` timed on a migrated database holding
0, 1k, 10k, 100k pending jobs of a realistic shape, every claim put back afterwards so the backlog stays."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text, update
from sqlalchemy.engine import Engine

from bench.metrics import summary
from bench.procs import postgres_database
from bot.clock import utcnow
from bot.db import migrate
from bot.db.engine import make_engine
from bot.db.models import Job, JobStatus
from bot.jobs import queue
from bot.jobs.kinds import system_lane
from workflows.effects import System

Json = dict[str, Any]
KINDS = {
    System.JIRA: ("jira.sync", "jira.comment"),
    System.SLACK: ("slack.card", "slack.note"),
    System.MAIL: ("mail.send",),
}
SYSTEMS = tuple(KINDS)
INSERT_BATCH = 5000
WORKER, LEASE = "bench-claimer", 60.0


def backlog_rows(first_lane: int, count: int) -> Iterator[dict[str, Any]]:
    """``count`` pending jobs in lanes ``jira:N``/``slack:N``/``mail:N`` of 1 to 5 jobs each (3 on average); in
    every 10th lane the head job is running (another worker holds it, so the lane is blocked), in every 5th lane
    the jobs wait for a retry (run_after an hour ahead), and every 10th lane's head is urgent (a first card or
    create). Lanes are numbered from ``first_lane``; returns rows for a bulk insert."""
    now = utcnow()
    past, future, lease = now - timedelta(minutes=5), now + timedelta(hours=1), now + timedelta(hours=1)
    made, lane = 0, first_lane
    while made < count:
        system = SYSTEMS[lane % len(SYSTEMS)]
        kinds = KINDS[system]
        size = min(1 + lane % 5, count - made)
        blocked, backoff = lane % 10 == 0, lane % 5 == 1
        for position in range(size):
            running = blocked and position == 0
            yield {
                "lane": system_lane(system, lane),
                "kind": kinds[position % len(kinds)],
                "payload": {},
                "status": JobStatus.RUNNING.value if running else JobStatus.PENDING.value,
                "priority": queue.URGENT if position == 0 and lane % 10 == 3 else queue.ROUTINE,
                "attempts": 1 if running or backoff else 0,
                "run_after": future if backoff else past,
                "locked_by": "bench-other-worker" if running else None,
                "locked_until": lease if running else None,
                "created_at": past,
            }
            made += 1
        lane += 1


def fill(engine: Engine, first_lane: int, count: int) -> int:
    """Insert ``count`` backlog jobs (multi-row INSERTs); the next free lane number."""
    rows = list(backlog_rows(first_lane, count))
    with engine.begin() as conn:
        for start in range(0, len(rows), INSERT_BATCH):
            conn.execute(insert(Job), rows[start : start + INSERT_BATCH])
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE jobs"))  # what autovacuum would do for a table that grew this much
        # SQLite: no ANALYZE, as the bot never runs it. (With sqlite_stat1, SQLite 3.40.1 plans the claim as a
        # skip-scan of ix_jobs_pending_claim and finds no job at all while hundreds are runnable.)
    last = rows[-1]["lane"] if rows else f"x:{first_lane - 1}"
    return int(last.rsplit(":", 1)[1]) + 1


def put_back(engine: Engine, job: Job) -> None:
    """The claimed job pending again, as it was: the backlog stays the same size for the next claim."""
    with engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job.id)  # type: ignore[arg-type]
            .values(status=JobStatus.PENDING.value, locked_by=None, locked_until=None, attempts=job.attempts - 1)
        )


def measure(engine: Engine, claims: int) -> Json:
    """``claims`` claims in a row, each put back; the time of each claim alone."""
    times, found = [], 0
    for _ in range(claims):
        started = time.perf_counter()
        job = queue.claim(engine, WORKER, LEASE)
        times.append(time.perf_counter() - started)
        if job is not None:
            found += 1
            put_back(engine, job)
    ms = [1000 * t for t in times]
    return summary(ms) | {"median": statistics.median(ms), "claims": claims, "found_a_job": found}


@contextmanager
def database(kind: str, workdir: Any) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/claims.db"
    else:
        with postgres_database() as url:
            yield url


def claim_cost(kind: str, workdir: Any, sizes: tuple[int, ...], claims: int) -> Json:
    """On a fresh, migrated database of ``kind``: the claim's cost at each backlog size (pending jobs, the ones
    held by a running head included), growing the same table from one size to the next."""
    results: list[Json] = []
    with database(kind, workdir) as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        try:
            lane, pending = 1, 0
            for size in sorted(sizes):
                filled = time.perf_counter()
                if size > pending:
                    lane = fill(engine, lane, size - pending)
                    pending = size
                fill_seconds = time.perf_counter() - filled
                queue.claim(engine, WORKER, LEASE)  # warm: connection, statement cache
                _reset_all(engine)
                figures = measure(engine, claims)
                results.append({"backlog": size, "fill_seconds": fill_seconds} | figures)
                if size and not figures["found_a_job"]:
                    print(f"  {kind}: WARNING: no claim found a job in a backlog of {size}", file=sys.stderr)
                print(
                    f"  {kind}: backlog {size:>7}: claim median {figures['median']:.2f} ms, "
                    f"p99 {figures['p99']:.2f} ms",
                    file=sys.stderr,
                )
        finally:
            engine.dispose()
    base = results[0]["median"] if results else None
    for entry in results:
        entry["ratio_median_vs_empty"] = entry["median"] / base if base else None
    return {"database": kind, "claims_per_size": claims, "sizes": results}


def _reset_all(engine: Engine) -> None:
    """The warm-up claim's job back (whatever it was)."""
    with engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.locked_by == WORKER)  # type: ignore[arg-type]
            .values(status=JobStatus.PENDING.value, locked_by=None, locked_until=None, attempts=Job.attempts - 1)
        )
