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
            queue.enqueue(session, kind="jira.sync", lane=f"jira:{n}")  # routine updates
        queue.enqueue(session, kind="slack.card", lane="slack:1", priority=queue.OPENING)
        queue.enqueue(session, kind="alert.process", lane="group:1", priority=queue.URGENT)
    handlers = {"jira.sync": hangs, "jira.create": hangs, "slack.card": quick, "alert.process": quick}
    pool = WorkerPool(engine, Settings(), handlers, threads=4)
    assert pool.per_system == 2 and pool.urgent_beyond_share
    pool.start()
    try:
        # Slack's card and the bot's own decision are done while Jira's updates hold their share of the threads.
        wait_until(lambda: _done(engine, ("slack.card", "alert.process")) == 2, timeout=10, what="other work done")
        with lock:
            assert most[0] == 2
        # A new ticket's create does not wait for an update to come back: the urgent-only thread takes it beyond
        # Jira's share (and a thread is still left for everything else).
        with transaction(engine) as session:
            queue.enqueue(session, kind="jira.create", lane="jira:new", priority=queue.OPENING)
        pool.wake()
        wait_until(lambda: running[0] == 3, timeout=10, what="the create taken beyond Jira's share")
        with lock:
            assert most[0] == 3
    finally:
        release.set()
        wait_until(lambda: _done(engine, ("jira.sync", "jira.create")) == 9, timeout=20, what="Jira's jobs done")
        pool.stop()


def _done(engine: Any, kinds: tuple[str, ...]) -> int:
    with reading(engine) as session:
        jobs = session.exec(select(Job).where(Job.status == "done")).all()  # type: ignore[arg-type]
    return sum(1 for job in jobs if job.kind in kinds)


def _queue_looks(engine: Any, threads: int, seconds: float) -> int:
    """Statements an idle pool of ``threads`` sends to the jobs table in ``seconds``."""
    from sqlalchemy import event

    looks = [0]

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "jobs" in statement and threading.current_thread().name.startswith("worker-"):
            looks[0] += 1

    pool = WorkerPool(engine, Settings(job_poll_seconds=0.1), {}, threads=threads)
    pool.start()
    try:
        threading.Event().wait(0.5)  # every thread's first look is behind it
        event.listen(engine, "before_cursor_execute", count)
        threading.Event().wait(seconds)
        event.remove(engine, "before_cursor_execute", count)
    finally:
        pool.stop()
    return looks[0]


def test_an_idle_pool_looks_at_the_queue_once_a_poll_per_kind_of_thread_not_per_thread(engine: Any) -> None:
    one = _queue_looks(engine, threads=1, seconds=2)
    eight = _queue_looks(engine, threads=8, seconds=2)
    assert one > 0
    # Eight threads of two kinds (one urgent-only, seven general): about twice one thread's looks, not eight times.
    assert eight < 4 * one, (one, eight)


def test_work_committed_elsewhere_is_taken_by_every_idle_thread_after_one_poll(engine: Any) -> None:
    """No wake reaches this pool (the work comes from another process); its one look a poll finds a job, and
    that wakes the other idle threads, so six jobs run side by side after one poll, not one job a poll."""
    together = threading.Barrier(6, timeout=3.5)  # one job a poll (1 s) would take 6 s to gather six
    met: list[bool] = []

    def meet(ctx: JobContext) -> None:
        together.wait()
        met.append(True)

    pool = WorkerPool(engine, Settings(job_poll_seconds=1.0), {"slack.card": meet}, threads=8)
    pool.start()
    try:
        threading.Event().wait(0.3)  # every thread has looked at the empty queue and waits for its poll
        with transaction(engine) as session:
            for n in range(6):
                queue.enqueue(session, kind="slack.card", lane=f"slack:{n}")
        wait_until(lambda: _done(engine, ("slack.card",)) == 6, timeout=20, what="the six jobs done")
        assert len(met) == 6  # none broke the barrier by waiting for the next poll
    finally:
        pool.stop()
