"""Socket Mode: the bot opens a WebSocket to Slack (the emulator) and takes clicks over it as over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bot.sandbox.jira_emulator import create_jira_emulator
from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import create_slack_emulator
from tests.conftest import Emulators
from tests.e2e.helpers import cards, click, issues, post_alert, queue_drained
from tests.harness import SLACK_TOKEN, BotProcess, alertmanager_payload, wait_until

APP_TOKEN = "xapp-1-A0SANDBOX-1234-0123456789abcdef"


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    """As conftest's, with a Slack emulator that has its own app-level token and a server that speaks WebSocket."""
    jira_app, slack_app = create_jira_emulator(), create_slack_emulator(app_token=APP_TOKEN)
    with ServerThread(jira_app) as jira_server, ServerThread(slack_app, ws="auto") as slack_server:
        yield Emulators(
            jira=jira_app.state.emulator,
            slack=slack_app.state.emulator,
            jira_url=jira_server.url,
            slack_url=slack_server.url + "/api/",
        )


def socket_bot(make_bot: Any, emulators: Emulators) -> BotProcess:
    bot: BotProcess = make_bot(TRIAGE_SLACK_APP_TOKEN=APP_TOKEN)
    wait_until(lambda: "Slack Socket Mode connected" in bot.log(), timeout=10, what="Socket Mode to connect")
    assert emulators.slack.socket.status()["open"] == 1
    return bot


def _entries(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def _logged(bot: BotProcess, message: str) -> list[dict[str, Any]]:
    return [entry for entry in _entries(bot.log()) if entry["message"] == message]


def test_a_click_over_the_socket_moves_the_ticket_like_one_over_http(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    bot = socket_bot(make_bot, emulators)
    [on] = _logged(bot, "Slack Socket Mode on: interactivity also comes over a WebSocket")
    assert on["slack"] == emulators.slack_url.rstrip("/")
    [connected] = _logged(bot, "Slack Socket Mode connected")
    assert connected["app_id"] == "A0SANDBOX" and connected["num_connections"] == 1
    assert APP_TOKEN not in bot.log()
    with bot.client() as client:
        post_alert(client, alertmanager_payload("S"))
        queue_drained(database_url)
    [card] = cards(emulators, "C0OPS")

    # The click Slack would POST to the Request URL, delivered over the socket instead; Slack redelivers an
    # envelope it thinks was not acknowledged, and the second one changes nothing.
    body, _ = emulators.slack.click("C0OPS", card["ts"], "Close", "U0OP1")
    assert set(emulators.slack.socket.deliver_form(body)) == {"envelope_id"}  # a plain ack, no response
    assert set(emulators.slack.socket.deliver_form(body)) == {"envelope_id"}
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "Done"
    [comment] = issue["fields"]["comment"]["comments"]
    assert comment["body"].startswith("Close by Olivia Ops")
    [card] = cards(emulators, "C0OPS")
    assert "*State*\\nClosed" in json.dumps(card["blocks"])
    assert emulators.slack.ephemerals("C0OPS", "U0OP1") == []  # the redelivery was known, not judged stale
    sent = [e for e in emulators.slack.socket.status()["log"] if e["event"] == "sent"]
    assert [e["type"] for e in sent] == ["interactive", "interactive"]

    # The Request URL keeps working next to the socket.
    assert click(bot.url, emulators, "C0OPS", card["ts"], "Reopen", "U0OP1").status_code == 200
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "To Do"


def test_a_form_over_the_socket_answers_in_the_ack(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot = socket_bot(make_bot, emulators)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("F"))
        queue_drained(database_url)
        [card] = cards(emulators, "C0OPS")
        body, _ = emulators.slack.click("C0OPS", card["ts"], "Assign team", "U0OP1")
        assert set(emulators.slack.socket.deliver_form(body)) == {"envelope_id"}
        [modal] = wait_until(emulators.slack.views, timeout=10, what="the Assign team modal")
        assert modal["title"]["text"] == "Assign team"

        # A modal's errors go back in the ack's payload (accepts_response_payload), as over HTTP in the response.
        wrong, _ = emulators.slack.submit_view("U0OP1", {"team": {"team": "nope"}})
        refused = emulators.slack.socket.deliver_form(wrong)
        assert refused["payload"]["response_action"] == "errors" and "team" in refused["payload"]["errors"]
        right, _ = emulators.slack.submit_view("U0OP1", {"team": {"team": "payments"}})
        assert "payload" not in emulators.slack.socket.deliver_form(right)
        queue_drained(database_url)
        ticket = client.get("/api/tickets").json()["tickets"][0]
        assert (ticket["state"], ticket["team"]) == ("assigned", "payments")


def test_it_reconnects_when_slack_asks(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    bot = socket_bot(make_bot, emulators)
    with bot.client() as client:
        post_alert(client, alertmanager_payload("R"))
        queue_drained(database_url)
    assert emulators.slack.socket.disconnect("refresh_requested") == 1
    wait_until(lambda: _logged(bot, "Slack Socket Mode reconnected"), timeout=10, what="a reconnect")
    [asked] = _logged(bot, "Slack asked for a new Socket Mode connection; reconnecting")
    assert asked["reason"] == "refresh_requested"
    wait_until(lambda: emulators.slack.socket.status()["open"] == 1, timeout=5, what="the old connection to close")
    assert emulators.slack.socket.status()["opened"] == 2

    [card] = cards(emulators, "C0OPS")
    body, _ = emulators.slack.click("C0OPS", card["ts"], "Close", "U0OP1")
    assert set(emulators.slack.socket.deliver_form(body)) == {"envelope_id"}  # over the new connection
    queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["status"]["name"] == "Done"


def test_a_token_slack_refuses_stops_the_start_naming_the_variable(make_bot: Any, emulators: Emulators) -> None:
    wrong = "xapp-1-A0SANDBOX-1234-not-this-one"
    bot: BotProcess = make_bot(wait=False, TRIAGE_SLACK_APP_TOKEN=wrong)
    assert bot.proc is not None
    wait_until(lambda: bot.proc.poll() is not None, timeout=20, what="the bot to exit")
    assert bot.proc.returncode != 0
    log = bot.log()
    [refused] = [e for e in _entries(log) if e.get("slack_error") == "invalid_auth"]
    assert refused["level"] == "error"
    assert refused["message"].startswith("Slack refused TRIAGE_SLACK_APP_TOKEN for Socket Mode (invalid_auth)")
    assert wrong not in log
    assert emulators.slack.socket.status()["opened"] == 0


def test_with_the_slack_emulator_it_connects_to_its_own(make_bot: Any) -> None:
    bot: BotProcess = make_bot(TRIAGE_SLACK_BOT_TOKEN="", TRIAGE_SLACK_SIGNING_SECRET="", TRIAGE_SLACK_APP_TOKEN="on")
    wait_until(lambda: "Slack Socket Mode connected" in bot.log(), timeout=10, what="Socket Mode to connect")
    status = httpx.get(f"{bot.url}/sandbox/slack/_emulator/socket", timeout=5).json()
    assert (status["open"], status["opened"]) == (1, 1)
    assert [e["event"] for e in status["log"]] == ["hello"]


def test_the_emulator_speaks_socket_mode_as_slack_does(emulators: Emulators) -> None:
    web = WebClient(base_url=emulators.slack_url)
    for token, error in ((SLACK_TOKEN, "not_allowed_token_type"), ("xapp-1-someone-else", "invalid_auth")):
        with pytest.raises(SlackApiError) as refused:
            web.apps_connections_open(app_token=token)
        assert refused.value.response["error"] == error
    url = web.apps_connections_open(app_token=APP_TOKEN)["url"]
    assert url.startswith(emulators.slack_url.replace("http://", "ws://").removesuffix("api/") + "link/?ticket=")

    with connect(url) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A0SANDBOX"}
        assert hello["num_connections"] == 1
        with pytest.raises(InvalidStatus):
            connect(url)  # a URL is good for one connection

        def app_side() -> None:  # what an app does: ack each envelope, answering a slash command
            envelope = json.loads(ws.recv(timeout=5))
            assert envelope["accepts_response_payload"] is True and envelope["payload"]["command"] == "/triage"
            ws.send(json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "pong"}}))

        thread = threading.Thread(target=app_side)
        thread.start()
        ack = emulators.slack.socket.deliver_form("command=%2Ftriage&text=ping&user_id=U0OP1", timeout=5)
        thread.join(5)
        assert ack["payload"] == {"text": "pong"}

        with pytest.raises(TimeoutError):  # nobody acks now
            emulators.slack.socket.deliver("events_api", {"type": "event_callback"}, timeout=0.5)
    wait_until(lambda: emulators.slack.socket.status()["open"] == 0, timeout=5, what="the close to be seen")
    with pytest.raises(RuntimeError, match="no app is connected"):
        emulators.slack.socket.deliver("interactive", {})
