"""The shared request budget on a real database (SQLite and PostgreSQL): a 429 pauses a system for every worker of
every process, pauses only lengthen, the end is said once, and an optional steady pace."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
import requests
from jira.exceptions import JIRAError
from requests.structures import CaseInsensitiveDict
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse
from sqlalchemy import update
from sqlmodel import select

from bot.clock import utcnow
from bot.db.engine import reading, transaction
from bot.db.models import Job, OutsideBudget
from bot.jobs import queue
from bot.jobs.budget import Budget, _aware
from bot.jobs.retry import classify, jira_response_seen, notice
from bot.jobs.worker import JobContext, WorkerPool
from bot.metrics import PAUSED_SECONDS
from bot.settings import Settings
from tests.harness import wait_until


def _budget(engine: Any, **rates: float) -> Budget:
    return Budget(engine, rates, cache_seconds=0.0)  # every question reads the rows: no waiting in tests


def _row(engine: Any, system: str) -> OutsideBudget:
    with reading(engine) as session:
        row = session.exec(select(OutsideBudget).where(OutsideBudget.system == system)).one()
        return row


def _end_pause(engine: Any, system: str, seconds_ago: float = 0.1) -> None:
    """Move the pause's end into the past, as if it had run out."""
    with transaction(engine) as session:
        session.execute(
            update(OutsideBudget)
            .where(OutsideBudget.system == system)  # type: ignore[arg-type]
            .values(paused_until=utcnow() - timedelta(seconds=seconds_ago))
        )


def _add(engine: Any, lane: str, kind: str, priority: int = queue.ROUTINE) -> int:
    with transaction(engine) as session:
        job = queue.enqueue(session, kind=kind, lane=lane, priority=priority)
        assert job is not None
        session.flush()
        assert job.id is not None
        return job.id


def test_a_pause_is_seen_by_every_process_and_only_its_systems_lanes_wait(engine: Any) -> None:
    here, there = _budget(engine), _budget(engine)
    assert here.skip_lanes() == () and there.skip_lanes() == ()
    pause = here.rate_limited("jira", 5.0, "jira-burst-based")
    assert pause.began and 4.9 <= (pause.until - utcnow()).total_seconds() <= 5.0
    assert there.skip_lanes() == ("jira:",)
    assert set(there.paused()) == {"jira"}
    row = _row(engine, "jira")
    assert (row.reason, row.strikes) == ("jira-burst-based", 0)

    jira_job, slack_job = _add(engine, "jira:1", "jira.create"), _add(engine, "slack:1", "slack.card")
    claimed = queue.claim(engine, "w", 30, skip_lanes=there.skip_lanes())
    assert claimed is not None and claimed.id == slack_job
    assert queue.claim(engine, "w", 30, skip_lanes=there.skip_lanes()) is None
    assert queue.claim(engine, "w", 30) is not None and jira_job  # without the budget it would have run

    here.rate_limited("slack", 1.0)
    assert there.skip_lanes() == ("jira:", "slack:", "slack.ephemeral:")


def test_a_pause_only_ever_lengthens(engine: Any) -> None:
    budget = _budget(engine)
    first = budget.rate_limited("jira", 10.0)
    shorter = budget.rate_limited("jira", 2.0)
    assert not shorter.began and shorter.until == first.until
    unstated = budget.rate_limited("jira", None)  # a call in flight when the pause began
    assert not unstated.began and unstated.until == first.until
    longer = budget.rate_limited("jira", 30.0)
    assert not longer.began and longer.until > first.until
    assert _aware(_row(engine, "jira").paused_until) == longer.until


def test_without_a_stated_time_our_own_pause_doubles_while_429s_keep_coming(engine: Any) -> None:
    budget = _budget(engine)
    lengths = []
    for _ in range(4):
        pause = budget.rate_limited("jira", None)
        assert pause.began
        lengths.append((pause.until - utcnow()).total_seconds())
        _end_pause(engine, "jira")
    for expected, seen in zip((1.0, 2.0, 4.0, 8.0), lengths, strict=True):
        assert expected * 0.95 <= seen <= expected * 1.1
    assert _row(engine, "jira").strikes == 4
    # A stated time resets the backoff; so does a quiet minute.
    budget.rate_limited("jira", 1.0)
    assert _row(engine, "jira").strikes == 0
    _end_pause(engine, "jira", seconds_ago=120)
    again = budget.rate_limited("jira", None)
    assert (again.until - utcnow()).total_seconds() <= 1.1


def test_the_end_of_a_pause_is_said_once_across_processes(engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    here, there = _budget(engine), _budget(engine)
    before = PAUSED_SECONDS.labels("slack")._value.get()
    here.rate_limited("slack", 30.0)
    with transaction(engine) as session:  # as if the 30 s had gone by
        moved = {"paused_since": utcnow() - timedelta(seconds=30.1), "paused_until": utcnow() - timedelta(seconds=0.1)}
        session.execute(update(OutsideBudget).where(OutsideBudget.system == "slack").values(**moved))  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="triage.budget"):
        assert here.skip_lanes() == () and there.skip_lanes() == ()
        assert here.skip_lanes() == () and there.skip_lanes() == ()
    resumed = [r for r in caplog.records if "resumed" in r.getMessage()]
    assert len(resumed) == 1 and resumed[0].system == "slack"  # type: ignore[attr-defined]
    assert PAUSED_SECONDS.labels("slack")._value.get() - before == pytest.approx(30.0, abs=0.01)
    assert _row(engine, "slack").paused_since is None


def test_after_a_pause_the_most_urgent_work_goes_first(engine: Any) -> None:
    budget = _budget(engine)
    budget.rate_limited("jira", 30.0)
    syncs = [_add(engine, f"jira:{n}", "jira.sync") for n in range(3)]
    creates = [_add(engine, f"jira:{n}", "jira.create", priority=queue.URGENT) for n in range(3, 6)]
    assert queue.claim(engine, "w", 30, skip_lanes=budget.skip_lanes()) is None
    _end_pause(engine, "jira")
    order = []
    while (job := queue.claim(engine, "w", 30, skip_lanes=budget.skip_lanes())) is not None:
        order.append(job.id)
    assert order == creates + syncs


def test_a_429_of_the_whole_system_pauses_it_and_gives_the_job_back_until_the_end(engine: Any) -> None:
    response = requests.Response()
    response.status_code = 429
    response.headers = CaseInsensitiveDict({"Retry-After": "20", "RateLimit-Reason": "jira-burst-based"})

    def handler(_: JobContext) -> None:
        raise JIRAError("Rate limit exceeded.", status_code=429, response=response)

    budget = _budget(engine)
    pool = WorkerPool(engine, Settings(), {"jira.create": handler}, threads=0, budget=budget)
    job_id = _add(engine, "jira:1", "jira.create", priority=queue.URGENT)
    job = queue.claim(engine, "w", 30)
    assert job is not None and job.attempts == 1
    pool.run(job, "w")
    with reading(engine) as session:
        stored = session.get(Job, job_id)
        assert stored is not None
    pause_end = _aware(_row(engine, "jira").paused_until)
    assert stored.status == "pending" and stored.attempts == 0  # the attempt is given back
    assert pause_end is not None and abs((_aware(stored.run_after) - pause_end).total_seconds()) < 0.01  # type: ignore[operator]
    assert budget.skip_lanes() == ("jira:",)

    # Jira's per-issue write limit: only this lane waits, the rest of Jira goes on.
    _end_pause(engine, "jira")
    response.headers = CaseInsensitiveDict({"Retry-After": "20", "RateLimit-Reason": "jira-per-issue-on-write"})
    with transaction(engine) as session:
        session.execute(update(Job).values(run_after=utcnow()))
    job = queue.claim(engine, "w", 30)
    assert job is not None
    pool.run(job, "w")
    assert budget.skip_lanes() == ()
    with reading(engine) as session:
        stored = session.get(Job, job_id)
        assert stored is not None and stored.attempts == 0
        assert 18 <= (_aware(stored.run_after) - utcnow()).total_seconds() <= 22.1  # type: ignore[operator]


def test_a_steady_pace_shared_by_every_process(engine: Any) -> None:
    here, there = _budget(engine, jira=0.5), _budget(engine, jira=0.5)  # one call every 2 s
    assert here.pace("jira:1") == 0.0
    wait = there.pace("jira:2")
    assert 1.9 <= wait <= 2.0
    assert there.skip_lanes() == ("jira:",)  # this process does not claim Jira's jobs until the slot
    assert here.skip_lanes() == ()  # nor does the other, once it too asks for a slot
    assert here.pace("jira:3") > 0 and here.skip_lanes() == ("jira:",)
    assert here.pace("slack:1") == 0.0 and here.pace("group:x") == 0.0  # unpaced: free, no database
    with transaction(engine) as session:
        session.execute(update(OutsideBudget).values(next_slot=None))
    assert there.pace("jira:2") == 0.0


def test_a_429_a_handler_caught_still_pauses_its_system(engine: Any) -> None:
    """jira.sync asks Slack who the assignee is and, when Slack cannot say, leaves the assignee for later: the job
    succeeds, but Slack's 429 must still pause Slack for everyone."""

    def handler(_: JobContext) -> None:
        response = requests.Response()
        response.status_code = 429
        response.headers = CaseInsensitiveDict({"Retry-After": "20", "RateLimit-Reason": "jira-quota-tenant-based"})
        jira_response_seen(response)  # what the Jira client's session hook does with every answer
        slack_429 = SlackResponse(
            client=None,
            http_verb="POST",
            api_url="https://slack.com/api/users.info",
            req_args={},
            data={"ok": False, "error": "ratelimited"},
            headers={"retry-after": "30"},
            status_code=429,
        )
        notice(classify(SlackApiError("ratelimited", slack_429)))  # what the Slack client does with every error

    budget = _budget(engine)
    pool = WorkerPool(engine, Settings(), {"jira.sync": handler}, threads=1, budget=budget)
    job_id = _add(engine, "jira:1", "jira.sync")
    pool.start()
    try:
        wait_until(lambda: budget.skip_lanes() == ("jira:", "slack:", "slack.ephemeral:"), timeout=10, what="pauses")
    finally:
        pool.stop()
    with reading(engine) as session:
        stored = session.get(Job, job_id)
        assert stored is not None and stored.status == "done"
    assert _row(engine, "jira").reason == "jira-quota-tenant-based"
    assert 29 <= (_aware(_row(engine, "slack").paused_until) - utcnow()).total_seconds() <= 30  # type: ignore[operator]


def test_after_a_pause_its_jobs_ramp_up(engine: Any) -> None:
    budget = _budget(engine)
    budget.rate_limited("jira", 5.0)
    _end_pause(engine, "jira", seconds_ago=0.0)
    assert budget.skip_lanes() == ()
    assert budget.pace("jira:1") == 0.0
    assert 0.9 <= budget.pace("jira:2") <= 1.0  # 1 job/s right after a first pause
    assert budget.skip_lanes() == ("jira:",)
    assert budget.pace("slack:1") == 0.0  # Slack was never paused: no ramp
    # A 429 four seconds into the ramp (4 jobs/s by then): the next ramp starts at half that.
    _end_pause(engine, "jira", seconds_ago=4.0)
    budget.rate_limited("jira", 1.0)
    ramp_rate = _row(engine, "jira").ramp_rate
    assert ramp_rate is not None and 1.95 <= ramp_rate <= 2.1
    # A minute after a pause the ramp is long over: jobs are not paced at all.
    _end_pause(engine, "jira", seconds_ago=60.0)
    with transaction(engine) as session:
        session.execute(update(OutsideBudget).values(next_slot=None))
    elsewhere = _budget(engine)  # a process that did not just wait for a slot itself
    assert elsewhere.skip_lanes() == ()
    assert [elsewhere.pace(f"jira:{n}") for n in range(20)] == [0.0] * 20


def test_a_ramp_starts_just_under_the_rate_the_system_was_seen_to_let_through(engine: Any) -> None:
    tick = [1000.0]
    budget = Budget(engine, {}, cache_seconds=0.0, clock=lambda: tick[0])
    for _ in range(40):  # 40 Jira jobs through in 2 s: 20/s
        tick[0] += 0.05
        budget.went_through("jira:1")
    budget.went_through("slack:1")  # another system's work is not counted
    assert budget.measured_rate("jira", utcnow()) == pytest.approx(20.0, rel=0.05)
    budget.rate_limited("jira", 1.0)
    assert _row(engine, "jira").ramp_rate == pytest.approx(18.0, rel=0.05)  # 0.9 x 20/s, not 1 job/s
    # After that pause: only what went through since it ended counts (20 jobs in the 1.2 s since), not the
    # seconds before it when nothing could go through.
    _end_pause(engine, "jira", seconds_ago=1.2)
    budget.skip_lanes()  # reads the rows: the ramp and when it began
    tick[0] += 1.5
    for _ in range(20):
        tick[0] += 0.05
        budget.went_through("jira:2")
    assert budget.measured_rate("jira", utcnow()) == pytest.approx(20.0, rel=0.15)
    # Too few jobs to tell: half the rate a ramp on had reached, as before.
    quiet = Budget(engine, {}, cache_seconds=0.0, clock=lambda: tick[0])
    assert quiet.measured_rate("jira", utcnow()) is None
    _end_pause(engine, "jira", seconds_ago=2.0)
    quiet.rate_limited("jira", 1.0)
    ramp_rate = _row(engine, "jira").ramp_rate
    assert ramp_rate is not None and 17.0 <= ramp_rate <= 19.0  # 18/s doubled over 2 s is 36/s, halved
