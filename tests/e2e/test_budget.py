"""One request budget per outside system: a 429 that names the whole of Jira pauses every Jira lane (no request
reaches Jira until the pause ends) while Slack work goes on, and after it the new problems' creates go before the
updates of known tickets; Jira's per-issue write limit holds only that issue's lane; without Retry-After, Jira's
X-RateLimit-Reset says how long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bot.db.engine import make_engine
from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained
from tests.harness import BotProcess, wait_until

OPS = "C0OPS"


def _pause_end(database_url: str, system: str = "jira") -> datetime | None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT paused_until FROM outside_budgets WHERE system = :system")
            value = connection.execute(query, {"system": system}).scalar()
    finally:
        engine.dispose()
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _any_urgent(database_url: str) -> bool:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return bool(connection.execute(text("SELECT count(*) FROM jobs WHERE priority = 0")).scalar())
    finally:
        engine.dispose()


def _limited(emulators: Emulators) -> bool:
    return any(r["status"] == 429 for r in emulators.jira.requests())


def _creates(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "POST" and r["path"].endswith("/issue")]


def _updates(requests: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] == "PUT" and r["path"].endswith(f"/issue/{key}")]


def test_a_jira_429_pauses_every_jira_lane_slack_goes_on_and_creates_go_first(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    # One worker, so that the order of the calls after the pause is the order of the claims.
    bot: BotProcess = make_bot(TRIAGE_WORKERS="1", TRIAGE_JIRA_SEARCH_SETTLE_SECONDS="0")
    jira = emulators.jira
    with bot.client() as client:
        for name in ("OLD1", "OLD2"):  # two known tickets: their next changes are routine syncs
            post_alert(client, alertmanager_payload(name))
        queue_drained(database_url)
        old_keys = [i["key"] for i in issues(emulators)]
        assert len(old_keys) == 2

        # Jira's burst limit answers the next create: 429, Retry-After 5, RateLimit-Reason jira-burst-based.
        jira.set_fault(status=429, retry_after="5", count=1, methods={"POST"}, path_contains="/issue")
        post_alert(client, alertmanager_payload("NEW0"))
        wait_until(lambda: _limited(emulators), timeout=10, what="Jira's 429")
        wait_until(lambda: _pause_end(database_url) is not None, timeout=10, what="the pause to be recorded")
        paused_until = _pause_end(database_url)
        assert paused_until is not None
        seen = len(jira.requests())

        # During the pause: a change to each known ticket, then four new problems (queued after the changes).
        for name in ("OLD1", "OLD2"):
            post_alert(client, alertmanager_payload(name, alerts=2))
        for n in range(1, 5):
            post_alert(client, alertmanager_payload(f"NEW{n}"))
        # Slack goes on: every new problem's card is posted while Jira is paused.
        wait_until(lambda: len(cards(emulators, OPS)) == 7, timeout=10, what="the new cards during the pause")
        assert datetime.now(UTC) < paused_until, "the pause ended before the test could look; make it longer"
        assert jira.requests()[seen:] == []  # not one Jira call, though five creates and two syncs are waiting

        queue_drained(database_url, timeout=60)
    after = jira.requests()[seen:]
    assert all(r["time"] >= paused_until.timestamp() - 0.01 for r in after)
    assert not any(r["status"] == 429 for r in after)
    creates = _creates(after)
    assert len(creates) == 5 and len(issues(emulators)) == 7
    syncs = [r for key in old_keys for r in _updates(after, key)]
    assert len(syncs) == 2
    # One line when Jira paused and one when it resumed (said by the first worker to look after the end), not one
    # per job.
    wait_until(lambda: "outside system resumed" in bot.log_path.read_text(), timeout=5, what="the resume line")
    assert bot.log_path.read_text().count("outside system paused") == 1
    assert bot.log_path.read_text().count("outside system resumed") == 1
    # The budget went to the new problems first: every create (the refused one too) before any update of a known
    # ticket, though the updates were queued first.
    assert _any_urgent(database_url)
    assert max(r["time"] for r in creates) < min(r["time"] for r in syncs)


def test_the_per_issue_write_limit_holds_only_that_issues_lane(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot: BotProcess = make_bot()
    jira = emulators.jira
    with bot.client() as client:
        for name in ("ONE", "TWO"):
            post_alert(client, alertmanager_payload(name))
        queue_drained(database_url)
        first, second = (i["key"] for i in issues(emulators))
        seen = len(jira.requests())

        per_issue = {"RateLimit-Reason": "jira-per-issue-on-write"}
        jira.set_fault(
            status=429, retry_after="4", count=1, methods={"PUT"}, path_contains=f"/issue/{first}", headers=per_issue
        )
        for name in ("ONE", "TWO"):
            post_alert(client, alertmanager_payload(name, alerts=2))
        post_alert(client, alertmanager_payload("THREE"))

        def rest_of_jira_went_on() -> bool:
            done = jira.requests()[seen:]
            return len(_updates(done, second)) == 1 and len(issues(emulators)) == 3

        wait_until(rest_of_jira_went_on, timeout=10, what="the other issue's update and the new issue")
        assert _pause_end(database_url) is None  # Jira as a whole was never paused
        queue_drained(database_url, timeout=30)
    done = jira.requests()[seen:]
    limited, retried = _updates(done, first)
    assert (limited["status"], retried["status"]) == (429, 204)
    assert retried["time"] - limited["time"] >= 4.0  # that lane waited as long as Jira said
    [other] = _updates(done, second)
    [create] = _creates(done)
    assert other["time"] < retried["time"] and create["time"] < retried["time"]


def test_without_retry_after_jiras_reset_time_is_when_jira_resumes(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot: BotProcess = make_bot(TRIAGE_JIRA_SEARCH_SETTLE_SECONDS="0")
    jira = emulators.jira
    reset = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    headers = {"X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%SZ")}
    jira.set_fault(status=429, count=1, methods={"POST"}, path_contains="/issue", headers=headers)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("RESET"))
        wait_until(lambda: _limited(emulators), timeout=10, what="Jira's 429")
        wait_until(lambda: _pause_end(database_url) is not None, timeout=10, what="the pause to be recorded")
        paused_until = _pause_end(database_url)
        assert paused_until is not None and abs((paused_until - reset).total_seconds()) < 0.05
        seen = len(jira.requests())
        queue_drained(database_url, timeout=30)
    after = jira.requests()[seen:]
    assert after and all(r["time"] >= reset.timestamp() - 0.01 for r in after)
    assert len(_creates(after)) == 1 and len(issues(emulators)) == 1


def test_a_slack_429_pauses_slack_while_jira_goes_on(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot: BotProcess = make_bot()
    slack = emulators.slack
    slack.set_fault(status=429, retry_after=4, count=1, methods={"chat.postMessage"})
    with bot.client() as client:
        post_alert(client, alertmanager_payload("S0"))
        wait_until(lambda: any(r["status"] == 429 for r in slack.requests()), timeout=10, what="Slack's 429")
        wait_until(lambda: _pause_end(database_url, "slack") is not None, timeout=10, what="the pause")
        paused_until = _pause_end(database_url, "slack")
        assert paused_until is not None
        seen = len(slack.requests())
        for name in ("S1", "S2"):
            post_alert(client, alertmanager_payload(name))
        wait_until(lambda: len(issues(emulators)) == 3, timeout=10, what="Jira issues during Slack's pause")
        assert datetime.now(UTC) < paused_until, "the pause ended before the test could look; make it longer"
        assert slack.requests()[seen:] == []
        queue_drained(database_url, timeout=30)
    after = slack.requests()[seen:]
    assert after and all(r["at"] >= paused_until.timestamp() - 0.01 for r in after)
    assert len(cards(emulators, OPS)) == 3 and not any(r["status"] == 429 for r in after)
