"""A create that certainly did not land is not looked for: a 429 or a refused connection costs no search on the
retry (a search per retry is what starved a rate-limited Jira). An uncertain one (a 503, which may come after
Jira committed) is looked for once, never twice."""

from __future__ import annotations

from typing import Any

from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.e2e.helpers import issues, post_alert, queue_drained
from tests.harness import BotProcess


def _calls(emulators: Emulators) -> tuple[int, int]:
    requests = emulators.jira.requests()
    creates = sum(1 for r in requests if r["method"] == "POST" and r["path"].endswith("/issue"))
    searches = sum(1 for r in requests if "/search" in r["path"])
    return creates, searches


def test_a_create_refused_with_429_is_retried_without_a_search(
    bot: BotProcess, emulators: Emulators, database_url: str
) -> None:
    emulators.jira.set_fault(status=429, count=3, retry_after="1", methods={"POST"}, path_contains="/issue")
    with bot.client() as client:
        post_alert(client, alertmanager_payload("RL", alerts=1))
    queue_drained(database_url, timeout=60)
    assert len(issues(emulators)) == 1
    assert _calls(emulators) == (4, 0)  # three 429s and the create; nothing to look for


def test_an_uncertain_create_is_looked_for_once_then_429s_cost_no_more_searches(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot: BotProcess = make_bot(TRIAGE_JIRA_SEARCH_SETTLE_SECONDS="0")
    emulators.jira.set_fault(status=429, count=2, retry_after="1", methods={"POST"}, path_contains="/issue")
    emulators.jira.set_fault(status=503, count=1, retry_after="1", methods={"POST"}, path_contains="/issue")  # first
    with bot.client() as client:
        post_alert(client, alertmanager_payload("UNC", alerts=1))
    queue_drained(database_url, timeout=60)
    assert len(issues(emulators)) == 1
    # 503 (uncertain) -> search, found nothing -> 429 -> 429 -> create: one search, four creates.
    assert _calls(emulators) == (4, 1)
    # and the search was one call: the jira library did not first fetch every field of the site
    assert not [r for r in emulators.jira.requests() if r["path"].endswith("/field")]


def test_when_jira_answers_again_the_jobs_waiting_for_it_go_at_once(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot: BotProcess = make_bot(TRIAGE_JIRA_SEARCH_SETTLE_SECONDS="0")
    emulators.jira.set_fault(status=503, count=3, methods={"POST"}, path_contains="/issue")
    with bot.client() as client:
        post_alert(client, alertmanager_payload("H1", alerts=1))
        post_alert(client, alertmanager_payload("H2", alerts=1))
    queue_drained(database_url, timeout=60)
    assert len(issues(emulators)) == 2
    # Both failed, both retried; the one that went through sent the other, still waiting out its backoff, at once.
    assert "its waiting jobs go now" in bot.log()


def test_a_create_that_could_not_reach_jira_at_all_costs_no_search(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    # Jira is down from the start: the worker's first client cannot even ask Jira for its server info, so no
    # create was ever sent, and none is looked for once Jira is back (a search each is what slowed the recovery).
    bot: BotProcess = make_bot(TRIAGE_JIRA_SEARCH_SETTLE_SECONDS="0")
    emulators.jira.set_fault(status=503, count=3, path_contains="/serverInfo")
    with bot.client() as client:
        post_alert(client, alertmanager_payload("DOWN", alerts=1))
    queue_drained(database_url, timeout=60)
    assert len(issues(emulators)) == 1
    server_info = [r["status"] for r in emulators.jira.requests() if r["path"].endswith("/serverInfo")]
    assert server_info[-4:] == [503, 503, 503, 200]  # three 503s, then the client is made (serve asked at start)
    assert _calls(emulators) == (1, 0)
