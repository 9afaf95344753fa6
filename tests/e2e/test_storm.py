"""Storms: 20,000 alerts in 200 groups, in 2,000+ webhook posts with redeliveries, must give exactly
200 Jira issues and 200 Slack cards, also when the server is SIGKILLed mid-storm, when Jira answers 503
and then 429, and with two worker processes sharing PostgreSQL. Nothing missing, nothing twice."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.db.engine import make_engine
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, queue_drained
from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload

GROUPS = int(os.environ.get("TRIAGE_STORM_GROUPS", "200"))
ALERTS_PER_GROUP = 100
STEPS = 10  # posts per group, each adding ALERTS_PER_GROUP / STEPS alerts: 2,000 posts
REDELIVER_EVERY = 7  # every 7th post is sent twice, as Alertmanager does after a lost answer
SENDERS = 8

pytestmark = pytest.mark.storm


def storm_posts(groups: int = GROUPS, prefix: str = "S") -> list[list[dict[str, Any]]]:
    """Per group, its posts in order (cumulative alert sets, as Alertmanager sends them)."""
    per_step = ALERTS_PER_GROUP // STEPS
    plan = []
    counter = 0
    for g in range(groups):
        posts = []
        for step in range(1, STEPS + 1):
            body = alertmanager_payload(f"{prefix}{g:03d}", alerts=per_step * step)
            posts.append(body)
            counter += 1
            if counter % REDELIVER_EVERY == 0:
                posts.append(body)
        plan.append(posts)
    return plan


def deliver(
    url: Callable[[], str],
    plan: list[list[dict[str, Any]]],
    on_progress: Callable[[int], None],
    answers: Counter[str] | None = None,
) -> int:
    """Send every group's posts in order, groups spread over sender threads; retry like Alertmanager does
    (connection errors and 5xx) until each post is acknowledged. Returns the number of acknowledged posts;
    ``answers`` counts every answer by status (and ``Retry-After`` on a 503), and connection errors."""
    sent = 0
    seen: Counter[str] = answers if answers is not None else Counter()
    lock = threading.Lock()
    errors: list[str] = []

    def sender(groups: list[list[dict[str, Any]]]) -> None:
        nonlocal sent
        with httpx.Client(headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=30) as client:
            for posts in groups:
                for body in posts:
                    deadline = time.monotonic() + 120
                    while True:
                        try:
                            response = client.post(f"{url()}/alerts/alertmanager", json=body)
                            retry_after = " with Retry-After" if response.headers.get("retry-after") else ""
                            with lock:
                                seen[f"{response.status_code}{retry_after}"] += 1
                            if response.status_code == 202:
                                break
                            if response.status_code < 500:
                                errors.append(f"{response.status_code} {response.text[:200]}")
                                return
                        except httpx.HTTPError:
                            with lock:
                                seen["connection error"] += 1
                        if time.monotonic() > deadline:
                            errors.append("gave up after 120 s")
                            return
                        time.sleep(0.2)
                    with lock:
                        sent += 1
                        on_progress(sent)

    threads = [threading.Thread(target=sender, args=(plan[i::SENDERS],)) for i in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    return sent


def assert_exactly_once(
    emulators: Emulators, database_url: str, posts: int, lost_answers: int = 0, groups: int = GROUPS
) -> None:
    assert posts >= STEPS * groups
    found = issues(emulators)
    labels = Counter(
        next(x for x in i["fields"]["labels"] if x.startswith("triage-") and x != "triage-bot") for i in found
    )
    assert len(found) == groups, f"{len(found)} Jira issues for {groups} groups"
    assert all(n == 1 for n in labels.values()), [k for k, n in labels.items() if n > 1]
    creates = [
        r
        for r in emulators.jira.requests()
        if r["method"] == "POST" and r["path"].endswith("/issue") and r["status"] == 201
    ]
    assert len(creates) == groups
    posted = cards(emulators)
    per_ticket = Counter(c["metadata"]["event_payload"]["ticket_id"] for c in posted)
    assert len(posted) == groups and all(n == 1 for n in per_ticket.values())
    for card in posted:
        assert f"{ALERTS_PER_GROUP} of {ALERTS_PER_GROUP} alerts firing" in json.dumps(card["blocks"])
    for issue in found:
        assert f"{ALERTS_PER_GROUP} of {ALERTS_PER_GROUP} alerts firing" in issue["fields"]["description"]
        assert issue["fields"]["comment"]["total"] == 0
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tickets = conn.execute(text("SELECT count(*), count(jira_key), count(slack_ts) FROM tickets")).one()
            events = conn.execute(text("SELECT count(*) FROM inbound_events")).scalar()
    finally:
        engine.dispose()
    assert tuple(tickets) == (groups, groups, groups)
    # Every acknowledged post was persisted. A kill can also take down a post that was committed but not yet
    # answered: its sender retries, and the redelivery is stored too (harmlessly, as the counts above show).
    assert posts <= (events or 0) <= posts + lost_answers


def test_storm(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    posts = deliver(lambda: bot.url, storm_posts(), lambda n: None)
    queue_drained(database_url, timeout=300)
    assert_exactly_once(emulators, database_url, posts)


def test_storm_with_sigkill_mid_storm(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    emulators.jira.set_fault(latency=0.05)  # so that kills land while Jira calls are in flight
    emulators.slack.set_fault(status=200, latency=0.02)
    bot = make_bot()
    plan = storm_posts()
    total = sum(len(p) for p in plan)
    kills: list[int] = []

    def progress(n: int) -> None:
        if (not kills and n >= total // 3) or (len(kills) == 1 and n >= 2 * total // 3):
            kills.append(n)
            threading.Thread(target=restart, daemon=True).start()

    def restart() -> None:
        bot.kill()  # SIGKILL: no graceful anything
        time.sleep(0.5)
        bot.start()

    posts = deliver(lambda: bot.url, plan, progress)
    assert len(kills) == 2
    queue_drained(database_url, timeout=300)
    assert_exactly_once(emulators, database_url, posts, lost_answers=len(kills) * SENDERS)
    # The kills landed among batches: notifications applied as followers of another's claim, in its transaction.
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            followers = conn.execute(
                text("SELECT count(*) FROM jobs WHERE kind = 'alert.process' AND locked_by IS NULL")
            ).scalar()
    finally:
        engine.dispose()
    assert (followers or 0) > 0


def test_storm_with_jira_503_then_429(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    # Newest fault wins: first 6 s of 503 (some create answers lost after commit), then 429s with Retry-After.
    emulators.jira.set_fault(status=429, seconds=12, retry_after="1")
    emulators.jira.set_fault(status=503, seconds=6, methods={"POST"}, path_contains="/issue", fail_after_commit=True)
    emulators.jira.set_fault(status=503, seconds=6)
    posts = deliver(lambda: bot.url, storm_posts(), lambda n: None)
    queue_drained(database_url, timeout=300)
    assert_exactly_once(emulators, database_url, posts)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_storm_with_two_worker_processes_on_postgresql(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    emulators.jira.set_fault(latency=0.02)
    bot = make_bot(TRIAGE_WORKERS="0")
    workers = [make_bot(command=("worker",), wait=False, TRIAGE_WORKERS="4") for _ in range(2)]
    posts = deliver(lambda: bot.url, storm_posts(), lambda n: None)
    queue_drained(database_url, timeout=300)
    assert_exactly_once(emulators, database_url, posts)
    for worker in workers:
        assert worker.proc is not None and worker.proc.poll() is None, worker.log()[-2000:]
    claimed_by = _workers_that_ran_jobs(database_url)
    assert len(claimed_by) == 2, claimed_by


def _workers_that_ran_jobs(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT DISTINCT locked_by FROM jobs WHERE locked_by IS NOT NULL")).all()
    finally:
        engine.dispose()
    return {str(r[0]).rsplit("/", 1)[0] for r in rows}
