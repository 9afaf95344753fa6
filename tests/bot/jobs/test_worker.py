"""The worker pool's own rules: no outside system may take every thread."""

from __future__ import annotations

import threading
from typing import Any

from sqlmodel import select

from bot.db.engine import reading, transaction
from bot.db.models import Job
from bot.jobs import queue
from bot.jobs.worker import JobContext, WorkerPool
from bot.settings import Settings
from tests.harness import wait_until


def test_a_hanging_outside_system_leaves_threads_for_the_others(engine: Any) -> None:
    release = threading.Event()
    lock = threading.Lock()
    running, most = [0], [0]

    def hangs(ctx: JobContext) -> None:  # a Jira that does not answer
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(30)
        with lock:
            running[0] -= 1

    def quick(ctx: JobContext) -> None:
        pass

    with transaction(engine) as session:
        for n in range(8):
            queue.enqueue(session, kind="jira.create", lane=f"jira:{n}", priority=queue.OPENING)
        queue.enqueue(session, kind="slack.card", lane="slack:1", priority=queue.OPENING)
        queue.enqueue(session, kind="alert.process", lane="group:1", priority=queue.URGENT)
    pool = WorkerPool(
        engine, Settings(), {"jira.create": hangs, "slack.card": quick, "alert.process": quick}, threads=4
    )
    assert pool.per_system == 2
    pool.start()
    try:
        # Slack's card and the bot's own decision are done while Jira holds its share of the threads.
        wait_until(lambda: _done(engine, ("slack.card", "alert.process")) == 2, timeout=10, what="other work done")
        with lock:
            assert most[0] == 2
    finally:
        release.set()
        wait_until(lambda: _done(engine, ("jira.create",)) == 8, timeout=20, what="Jira's jobs done")
        pool.stop()


def _done(engine: Any, kinds: tuple[str, ...]) -> int:
    with reading(engine) as session:
        jobs = session.exec(select(Job).where(Job.status == "done")).all()  # type: ignore[arg-type]
    return sum(1 for job in jobs if job.kind in kinds)
