"""A storm's paths: a group's queued notifications applied together in one transaction, in order; news before
repeats; concurrent posts stored by shared commits. Real server and worker processes, both databases."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text

from bot.db.engine import make_engine
from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained, sample
from tests.harness import BotProcess


def _rows(database_url: str, sql: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def test_a_groups_queued_notifications_are_applied_together_in_order(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    server: BotProcess = make_bot(TRIAGE_WORKERS="0")  # nothing runs until the worker starts
    with server.client() as client:
        for step in range(1, 11):  # cumulative alert sets, as Alertmanager sends them
            post_alert(client, alertmanager_payload("B1", alerts=step))
        last = alertmanager_payload("B1", alerts=10)
        for alert in last["alerts"][:4]:  # four of the ten cleared
            alert["status"], alert["endsAt"] = "resolved", "2026-11-22T11:00:00Z"
        post_alert(client, last)
    make_bot(command=("worker",), wait=False, TRIAGE_WORKERS="1")
    queue_drained(database_url, timeout=60)

    runs = _rows(database_url, "SELECT id, locked_by FROM jobs WHERE kind = 'alert.process' ORDER BY id")
    assert len(runs) == 11
    claimed = [job_id for job_id, by in runs if by is not None]
    assert claimed == [runs[0][0]]  # one claim, one transaction: the ten behind it were its followers
    (alerts_json,) = _rows(database_url, "SELECT alerts FROM tickets")[0]
    alerts = json.loads(alerts_json) if isinstance(alerts_json, str) else alerts_json
    assert len(alerts) == 10 and sum(a["status"] == "resolved" for a in alerts) == 4  # applied in order
    (issue,) = issues(emulators)
    assert "*Alerts:* firing, 6 of 10 alerts firing" in issue["fields"]["description"]
    (card,) = cards(emulators)
    assert "6 of 10 alerts firing" in json.dumps(card["blocks"])
    creates = [r for r in emulators.jira.requests() if r["method"] == "POST" and r["path"].endswith("/issue")]
    assert len(creates) == 1


def test_a_new_problem_goes_before_the_repeats_of_known_ones(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    server: BotProcess = make_bot(TRIAGE_WORKERS="0")
    with server.client() as client:
        post_alert(client, alertmanager_payload("KNOWN", alerts=1))
        worker = make_bot(command=("worker",), wait=False, TRIAGE_WORKERS="1")
        queue_drained(database_url, timeout=60)
        worker.kill()  # from here on the queue only fills
        (before,) = _rows(database_url, "SELECT max(id) FROM jobs")[0]
        for step in range(2, 12):
            post_alert(client, alertmanager_payload("KNOWN", alerts=step))
        post_alert(client, alertmanager_payload("NEWS", alerts=1))
    pending = _rows(database_url, "SELECT lane, priority FROM jobs WHERE status = 'pending' ORDER BY id")
    assert [p for _, p in pending] == [1] * 10 + [0]  # repeats are routine, the news urgent
    known_lane, news_lane = pending[0][0], pending[-1][0]
    make_bot(command=("worker",), wait=False, TRIAGE_WORKERS="1")
    queue_drained(database_url, timeout=60)
    (news_ticket,) = _rows(database_url, "SELECT id FROM tickets WHERE title LIKE '%NEWS%'")[0]
    claims = [
        lane
        for (lane,) in _rows(
            database_url, f"SELECT lane FROM jobs WHERE id > {before} AND locked_by IS NOT NULL ORDER BY finished_at"
        )
    ]
    # One worker thread, so claims are in order: the news, its issue and first card, then the known problem.
    assert claims[0] == news_lane
    assert set(claims[1:3]) == {f"jira:{news_ticket}", f"slack:{news_ticket}"}, claims
    assert claims[3] == known_lane, claims
    assert len(issues(emulators)) == 2


def test_concurrent_posts_share_commits_and_every_one_is_stored(bot: BotProcess, database_url: str) -> None:
    def send(n: int) -> int:
        with bot.client() as client:
            return client.post(
                "/alerts/alertmanager", json=alertmanager_payload(f"C{n % 20}", alerts=1 + n % 3)
            ).status_code

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(200)))
    assert answers == [202] * 200
    assert _rows(database_url, "SELECT count(*) FROM inbound_events")[0][0] == 200
    jobs = _rows(database_url, "SELECT count(*) FROM jobs WHERE kind = 'alert.process'")[0][0]
    assert jobs == 200
    with bot.client() as client:
        metrics = client.get("/metrics").text
    # Counted by the serve process itself (its intake), beside its worker process: both reach /metrics.
    assert sample(metrics, 'triage_notifications_received_total{source="alertmanager"}') == 200
    assert sample(metrics, "triage_intake_batch_requests_sum") == 200  # every post in some commit...
    assert 0 < sample(metrics, "triage_intake_batch_requests_count") < 200  # ...and some commits carried several
