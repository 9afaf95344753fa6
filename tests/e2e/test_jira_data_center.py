"""Jira Data Center: personal access token, the classic /search, and the same exactly-once create."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.jira_emulator import JiraEmulator, create_jira_emulator
from bot.sandbox.server_thread import ServerThread
from tests.conftest import Emulators
from tests.e2e.helpers import cards, post_alert, queue_drained
from tests.harness import BotProcess, alertmanager_payload, bot_env


@pytest.fixture
def data_center() -> Iterator[tuple[JiraEmulator, str]]:
    app = create_jira_emulator(deployment_type="Server")
    with ServerThread(app) as server:
        yield app.state.emulator, server.url


def test_data_center_with_a_personal_access_token(
    data_center: tuple[JiraEmulator, str], emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    jira, url = data_center
    # The first create takes effect but its answer is lost: the retry must find it through /search.
    jira.set_fault(status=503, count=1, methods={"POST"}, path_contains="/issue", fail_after_commit=True)
    env = bot_env(database_url, url, emulators.slack_url, TRIAGE_JIRA_USER="", TRIAGE_JIRA_TOKEN="sandbox-pat")
    bot = BotProcess(env=env, log_path=tmp_path / "bot.log").start()
    try:
        with bot.client() as client:
            post_alert(client, alertmanager_payload("DC"))
            post_alert(client, alertmanager_payload("DC", status="resolved"))
            queue_drained(database_url)
    finally:
        bot.kill()
    [issue] = jira.issues()
    assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == ["All alerts of this problem have cleared."]
    searches = [r for r in jira.requests() if r["path"].endswith("/search")]
    assert searches and all(r["status"] == 200 for r in searches)
    assert {r["user"] for r in jira.requests() if r["path"].startswith("/rest/api")} == {
        "557058:sandbox-bot"
    }  # the PAT owner
    assert len(cards(emulators)) == 1


def test_data_center_assignee_by_username(
    data_center: tuple[JiraEmulator, str], emulators: Emulators, database_url: str, tmp_path: Path
) -> None:
    """Data Center knows people by username: found with ?username=<e-mail>, assigned with {"name": ...}."""
    from tests.e2e.helpers import paul_takes_a_payments_ticket

    jira, url = data_center
    env = bot_env(database_url, url, emulators.slack_url, TRIAGE_JIRA_USER="", TRIAGE_JIRA_TOKEN="sandbox-pat")
    bot = BotProcess(env=env, log_path=tmp_path / "bot.log").start()
    try:
        with bot.client() as client:
            paul_takes_a_payments_ticket(bot.url, client, emulators, database_url)
    finally:
        bot.kill()
    [issue] = jira.issues()
    assert issue["fields"]["assignee"]["name"] == "paul.pay"
    assert issue["fields"]["status"]["name"] == "In Progress"
    # The comment names Paul by his Slack name and mentions him as Data Center's wiki markup does.
    assert issue["fields"]["comment"]["comments"][-1]["body"] == (
        "Assign member by Paul Payments: now In progress (assignee: [~paul.pay])."
    )
