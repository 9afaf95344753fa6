"""The job queue on a real database (SQLite and PostgreSQL): lanes, leases, retries, concurrency."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlmodel import Session, select

from bot.db.engine import transaction
from bot.db.models import Job, JobStatus
from bot.jobs import queue


def _add(engine: Any, lane: str, kind: str = "k", coalesce: bool = False, delay: float = 0.0) -> int | None:
    with transaction(engine) as session:
        job = queue.enqueue(session, kind=kind, lane=lane, payload={"n": 1}, coalesce=coalesce, delay=delay)
        session.flush()
        return job.id if job else None


def _done(engine: Any, job: Job, worker: str) -> None:
    with transaction(engine) as session:
        queue.complete(session, job, worker)


def test_a_lane_runs_one_job_at_a_time_in_order(engine: Any) -> None:
    a1, a2, b1 = _add(engine, "a"), _add(engine, "a"), _add(engine, "b")
    first = queue.claim(engine, "w1", 30)
    second = queue.claim(engine, "w2", 30)
    assert (first.id, second.id) == (a1, b1)  # type: ignore[union-attr]
    assert queue.claim(engine, "w3", 30) is None  # a2 waits for a1
    _done(engine, first, "w1")  # type: ignore[arg-type]
    third = queue.claim(engine, "w3", 30)
    assert third is not None and third.id == a2


def test_coalesced_jobs_keep_one_pending_copy(engine: Any) -> None:
    assert _add(engine, "t", "slack.card", coalesce=True) is not None
    assert _add(engine, "t", "slack.card", coalesce=True) is None
    assert _add(engine, "t", "jira.comment", coalesce=True) is not None


def test_an_expired_lease_is_claimed_again_and_the_old_owner_cannot_finish(engine: Any) -> None:
    job_id = _add(engine, "a")
    job = queue.claim(engine, "dead-worker", 30)
    assert job is not None
    assert queue.claim(engine, "w2", 30) is None
    with transaction(engine) as session:  # its worker stopped answering: the lease ran out
        row = session.get(Job, job_id)
        assert row is not None and row.locked_until is not None
        row.locked_until = row.created_at
    again = queue.claim(engine, "w2", 30)
    assert again is not None and again.id == job.id and again.attempts == 2
    try:
        _done(engine, job, "dead-worker")
        raise AssertionError("a lost lease must not complete")
    except queue.LostLease:
        pass
    _done(engine, again, "w2")


def test_failures_back_off_then_die_and_retry_brings_them_back(engine: Any) -> None:
    job_id = _add(engine, "a")
    later = _add(engine, "a")
    job = queue.claim(engine, "w", 30)
    assert job is not None
    queue.fail(engine, job, "w", "503 from Jira", retry_in=60)
    assert queue.claim(engine, "w", 30) is None  # in backoff, and it blocks its lane
    with transaction(engine) as session:
        row = session.get(Job, job_id)
        assert row is not None
        row.run_after = row.created_at
    job = queue.claim(engine, "w", 30)
    assert job is not None and job.attempts == 2
    queue.fail(engine, job, "w", "400 bad field", retry_in=None)
    assert queue.claim(engine, "w", 30) is None  # dead jobs hold their lane until retried
    with Session(engine) as session:
        dead = queue.list_jobs(session, ["dead"])
        assert [(j.id, j.last_error) for j in dead] == [(job_id, "400 bad field")]
        assert queue.stats(session).counts == {"dead": 1, "pending": 1}
    assert queue.retry(engine, job_id)  # type: ignore[arg-type]
    assert not queue.retry(engine, later)  # type: ignore[arg-type]
    job = queue.claim(engine, "w", 30)
    assert job is not None and job.id == job_id and job.attempts == 2  # it ran before: still "uncertain"


def test_a_refused_job_holds_nothing_up_and_is_retried_at_its_lanes_end(engine: Any) -> None:
    refused = _add(engine, "jira:1")
    later = _add(engine, "jira:1")
    job = queue.claim(engine, "w", 30)
    assert job is not None and job.id == refused
    queue.fail(engine, job, "w", "403 transition not allowed", retry_in=None, holds=False)
    running = queue.claim(engine, "w", 30)
    assert running is not None and running.id == later  # the lane goes on
    with Session(engine) as session:
        assert [j.id for j in queue.list_jobs(session, ["refused"])] == [refused]
    # Retried while the later job runs: it must not run beside it, so it goes again behind it.
    assert queue.retry(engine, refused)  # type: ignore[arg-type]
    assert queue.claim(engine, "w", 30) is None
    with transaction(engine) as session:
        queue.complete(session, running, "w")
    again = queue.claim(engine, "w", 30)
    assert again is not None and again.id is not None and again.id > later and again.payload == job.payload
    with Session(engine) as session:
        old = session.get(Job, refused)
        assert old is not None and old.status == "done" and f"retried as job {again.id}" in (old.last_error or "")
    queue.fail(engine, again, "w", "403 again", retry_in=None, holds=False)
    assert queue.drop(engine, again.id)
    assert not queue.retry(engine, again.id)  # dropped: neither dead nor refused
    with Session(engine) as session:
        assert queue.stats(session).counts == {"done": 3}


def test_concurrent_claimers_never_run_a_job_twice(engine: Any) -> None:
    lanes = 20
    for i in range(200):
        _add(engine, f"lane-{i % lanes}")
    seen: list[int] = []
    lock = threading.Lock()
    running_lanes: set[str] = set()
    overlap: list[str] = []

    def work(name: str) -> None:
        while True:
            job = queue.claim(engine, name, 30)
            if job is None:
                with Session(engine) as session:
                    left = session.exec(select(Job).where(Job.status != JobStatus.DONE)).first()
                if left is None:
                    return
                time.sleep(0.005)
                continue
            with lock:
                if job.lane in running_lanes:
                    overlap.append(job.lane)
                running_lanes.add(job.lane)
                seen.append(job.id)  # type: ignore[arg-type]
            time.sleep(0.001)
            with lock:
                running_lanes.discard(job.lane)
            _done(engine, job, name)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 200
    assert overlap == []


def test_a_coalesced_enqueue_and_a_claim_of_that_job_never_interleave(engine: Any) -> None:
    """The race the storm found on PostgreSQL: a card job claimed while a newer change was being written
    rendered the old state, and the newer change, seeing the job still pending, queued nothing."""
    first = _add(engine, "t", "slack.card", coalesce=True)
    claimed: list[Job | None] = []
    with transaction(engine) as session:
        assert queue.enqueue(session, kind="slack.card", lane="t", coalesce=True) is None
        claimer = threading.Thread(target=lambda: claimed.append(queue.claim(engine, "w", 30)))
        claimer.start()
        claimer.join(0.5)
        # PostgreSQL: the claim skipped the locked job; SQLite: the claim waits for this transaction.
        assert claimed in ([], [None])
    claimer.join(30)
    job = claimed[0] or queue.claim(engine, "w", 30)
    assert job is not None and job.id == first


def test_purge_forgets_old_finished_jobs_and_events_only(engine: Any) -> None:
    from datetime import timedelta

    from bot.clock import utcnow
    from bot.db.models import InboundEvent

    old, recent = _add(engine, "a"), _add(engine, "b")
    pending = _add(engine, "c", delay=3600)
    for _ in range(2):
        job = queue.claim(engine, "w", 30)
        assert job is not None
        _done(engine, job, "w")
    with transaction(engine) as session:
        row = session.get(Job, old)
        assert row is not None
        row.finished_at = utcnow() - timedelta(days=8)
        session.add(InboundEvent(source="alertmanager", body="{}", received_at=utcnow() - timedelta(days=31)))
        session.add(InboundEvent(source="alertmanager", body="{}"))
    assert queue.purge(engine, done_jobs_older_than=timedelta(days=7), events_older_than=timedelta(days=30)) == (1, 1)
    with Session(engine) as session:
        assert sorted(j.id for j in session.exec(select(Job))) == sorted([recent, pending])  # type: ignore[type-var]
        assert len(list(session.exec(select(InboundEvent)))) == 1


def _add_urgent(engine: Any, lane: str, priority: int = queue.URGENT) -> int | None:
    with transaction(engine) as session:
        job = queue.enqueue(session, kind="k", lane=lane, priority=priority)
        session.flush()
        return job.id if job else None


def test_urgent_work_is_claimed_before_a_backlog_of_routine_work_but_never_out_of_its_lane(engine: Any) -> None:
    backlog = [_add(engine, f"old:{n}") for n in range(20)]
    held = _add(engine, "busy")  # a routine job whose lane then gets urgent work behind it
    behind = _add_urgent(engine, "busy")
    news = _add_urgent(engine, "new:1")
    first = queue.claim(engine, "w", 30)
    assert first is not None and first.id == news  # before the twenty routine jobs queued earlier
    second = queue.claim(engine, "w", 30)
    assert second is not None and second.id == backlog[0]  # `behind` is urgent, but its lane's head comes first
    claimed = [queue.claim(engine, "w", 30) for _ in range(20)]
    ids = [job.id for job in claimed if job is not None]
    assert held in ids and behind not in ids  # held is running now: the urgent job behind it waits
    assert ids.index(held) == 19  # routine work keeps its order: held was queued after the backlog


def test_claims_skip_the_lanes_of_a_system_that_asked_to_wait(engine: Any) -> None:
    jira, slack = _add(engine, "jira:1"), _add(engine, "slack:1")
    claimed = queue.claim(engine, "w", 30, skip_lanes=("jira:",))
    assert claimed is not None and claimed.id == slack
    assert queue.claim(engine, "w", 30, skip_lanes=("jira:",)) is None
    again = queue.claim(engine, "w", 30)
    assert again is not None and again.id == jira


def test_followers_are_the_pending_jobs_of_the_same_kind_right_behind_a_running_job(engine: Any) -> None:
    head, f1, f2 = (
        _add(engine, "g", "alert.process"),
        _add(engine, "g", "alert.process"),
        _add(engine, "g", "alert.process"),
    )
    other = _add(engine, "g", "slack.card")
    late = _add(engine, "g", "alert.process")  # behind a job of another kind: not a follower
    job = queue.claim(engine, "w", 30)
    assert job is not None and job.id == head
    with transaction(engine) as session:
        followers = queue.followers(session, job, 10)
        assert [f.id for f in followers] == [f1, f2]
        assert [f.id for f in queue.followers(session, job, 1)] == [f1]
        queue.complete_followers(session, followers)
        queue.complete(session, job, "w")
    with Session(engine) as session:
        status = {j.id: j.status for j in session.exec(select(Job))}
    assert [status[i] for i in (head, f1, f2, other, late)] == ["done", "done", "done", "pending", "pending"]
    nxt = queue.claim(engine, "w", 30)
    assert nxt is not None and nxt.id == other


def test_purge_goes_in_batches_and_leaves_the_rest(engine: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from bot.clock import utcnow

    with transaction(engine) as session:
        for n in range(25):
            queue.enqueue(session, kind="k", lane=f"p:{n}")
    with transaction(engine) as session:
        session.execute(update(Job).values(status=JobStatus.DONE, finished_at=utcnow() - timedelta(days=8)))
        queue.enqueue(session, kind="k", lane="keep")  # pending: never purged
    assert queue.purge(
        engine, done_jobs_older_than=timedelta(days=7), events_older_than=timedelta(days=30), batch=7
    ) == (25, 0)
    with Session(engine) as session:
        assert [j.lane for j in session.exec(select(Job))] == ["keep"]


def test_claims_find_work_after_analyze_gives_the_planner_statistics(engine: Any) -> None:
    # SQLite 3.40 (Debian 12's) answered the claim's first form wrongly once ANALYZE had run: no job at all while
    # hundreds were runnable. The bot never runs ANALYZE, but an operator's `PRAGMA optimize` or a copied database
    # may; PostgreSQL's autovacuum always does.
    from sqlalchemy import text

    with transaction(engine) as session:
        for n in range(300):
            for _ in range(3):
                queue.enqueue(session, kind="k", lane=f"jira:{n}")
    heads = [queue.claim(engine, "w", 30) for _ in range(10)]
    assert all(job is not None for job in heads)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    claimed = queue.claim(engine, "w", 30)
    assert claimed is not None and claimed.lane not in {job.lane for job in heads if job is not None}


def test_a_claim_for_urgent_work_only_leaves_routine_work(engine: Any) -> None:
    _add(engine, "routine:1")
    assert queue.claim(engine, "w", 30, urgent_only=True) is None
    urgent = _add_urgent(engine, "new:1")
    opening = _add_urgent(engine, "jira:1", priority=queue.OPENING)
    claimed = [queue.claim(engine, "w", 30, urgent_only=True) for _ in range(3)]
    assert [job.id if job else None for job in claimed] == [opening, urgent, None]


def test_a_new_tickets_outside_calls_go_before_the_bots_own_urgent_work(engine: Any) -> None:
    # Alert decisions for many new groups are queued; the first group's decision queued its Jira create. The
    # create goes next (it mostly waits on Jira, so it overlaps the decisions), not after every other decision.
    decisions = [_add_urgent(engine, f"group:{n}") for n in range(10)]
    create = _add_urgent(engine, "jira:1", priority=queue.OPENING)
    claimed = [queue.claim(engine, "w", 30) for _ in range(3)]
    assert [job.id if job else None for job in claimed] == [create, decisions[0], decisions[1]]


def test_hurry_runs_now_the_jobs_of_a_system_waiting_out_their_backoff(engine: Any) -> None:
    retrying = _add(engine, "jira:1")
    other_system = _add(engine, "slack:1")
    never_tried = _add(engine, "jira:2", delay=3600)  # a job told to wait that never failed: left alone
    for job_id in (retrying, other_system):
        job = queue.claim(engine, "w", 30)
        assert job is not None and job.id == job_id
        queue.fail(engine, job, "w", "503", retry_in=3600)
    assert queue.claim(engine, "w", 30) is None
    assert queue.hurry(engine, "jira:") == 1
    again = queue.claim(engine, "w", 30)
    assert again is not None and again.id == retrying
    assert queue.claim(engine, "w", 30) is None  # the Slack job and the delayed one still wait
    assert never_tried is not None
