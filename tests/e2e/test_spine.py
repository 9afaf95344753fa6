"""One alert group in, exactly one Jira issue and one Slack card out, through the real server process."""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, post_alert, queue_drained
from tests.harness import (
    JIRA_TOKEN,
    SLACK_SECRET,
    SLACK_TOKEN,
    WEBHOOK_TOKEN,
    BotProcess,
    alertmanager_payload,
)


def test_alert_group_becomes_one_ticket_and_one_card(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    with bot.client() as client:
        for _ in range(3):  # Alertmanager redelivers after a timeout: harmless
            post_alert(client, alertmanager_payload("A", alerts=2))
        queue_drained(database_url)
        [issue] = issues(emulators)
        fields = issue["fields"]
        assert fields["summary"] == "AlertA: problem A (production)"
        assert fields["priority"]["name"] == "Highest"
        assert fields["project"]["key"] == "OPS" and fields["issuetype"]["name"] == "Task"
        assert "triage-bot" in fields["labels"] and "env-production" in fields["labels"]
        assert fields["comment"]["total"] == 0
        [card] = cards(emulators, "C0OPS")
        assert issue["key"] in json.dumps(card["blocks"])
        assert "2 of 2 alerts firing" in json.dumps(card["blocks"])

        post_alert(client, alertmanager_payload("A", alerts=3))  # one more alert: edit, no comment
        queue_drained(database_url)
        [issue] = issues(emulators)
        assert issue["fields"]["comment"]["total"] == 0
        [card] = cards(emulators, "C0OPS")
        assert "3 of 3 alerts firing" in json.dumps(card["blocks"]) and card["edit_count"] >= 1

        post_alert(client, alertmanager_payload("A", alerts=3, status="resolved"))  # on_resolve: comment
        post_alert(client, alertmanager_payload("A", alerts=3, status="resolved"))
        queue_drained(database_url)
        [issue] = issues(emulators)
        assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == [
            "All alerts of this problem have cleared."
        ]
        thread = emulators.slack.thread("C0OPS", card["ts"])
        assert [m["text"] for m in thread[1:]] == ["All alerts of this problem have cleared."]

        ticket = client.get("/api/tickets").json()["tickets"][0]
        assert (ticket["jira_key"], ticket["state"], ticket["alert_status"]) == (issue["key"], "open", "resolved")
    log = bot.log()
    assert f'"jira_key": "{issue["key"]}"' in log  # structured logs say what happened...
    for secret in (WEBHOOK_TOKEN, JIRA_TOKEN, SLACK_TOKEN, SLACK_SECRET):
        assert secret not in log  # ...and never what must stay secret


def test_team_route_skips_triage_and_staging_resolves(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    with bot.client() as client:
        post_alert(client, alertmanager_payload("P", labels={"service": "payments", "severity": "warning"}))
        post_alert(client, alertmanager_payload("S", labels={"env": "staging"}))
        queue_drained(database_url)
        assert len(cards(emulators, "C0PAY")) == 1 and len(cards(emulators, "C0OPS")) == 1
        by_env = {t["environment"]: t for t in client.get("/api/tickets").json()["tickets"]}
        assert by_env["production"]["state"] == "assigned" and by_env["production"]["priority"] == "High"
        post_alert(client, alertmanager_payload("S", labels={"env": "staging"}, status="resolved"))
        queue_drained(database_url)
        staging = emulators.jira.issue(by_env["staging"]["jira_key"])
        assert staging is not None and staging["fields"]["status"]["name"] == "Resolved"
        history = client.get(f"/api/tickets/{by_env['staging']['id']}").json()["history"]
        assert [(h["from"], h["to"], h["via"]) for h in history] == [
            (None, "open", "monitoring"),
            ("open", "resolved", "monitoring"),
        ]


def test_outside_text_is_escaped_everywhere(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    nasty = '<!channel> {noformat}[~admin] " OR project = X'
    with bot.client() as client:
        post_alert(client, alertmanager_payload("E", annotations={"summary": nasty}))
        queue_drained(database_url)
    [card] = cards(emulators)
    mrkdwn = json.dumps([b for b in card["blocks"] if b["type"] != "header"])
    assert "<!channel>" not in mrkdwn and "&lt;!channel&gt;" in mrkdwn
    assert "<!channel>" not in card["text"]
    [issue] = issues(emulators)
    assert "\\{noformat\\}\\[\\~admin\\]" in issue["fields"]["description"]


def test_events_api_trigger_acknowledge_resolve(bot: BotProcess, emulators: Emulators, database_url: str) -> None:
    event: dict[str, Any] = {
        "routing_key": "R1",
        "event_action": "trigger",
        "payload": {
            "summary": "Queue backlog",
            "source": "worker-3",
            "severity": "warning",
            "custom_details": {"env": "production"},
        },
    }
    with bot.client() as client:
        answer = client.post("/alerts/events", json=event)
        assert answer.status_code == 202
        body = answer.json()
        assert body["status"] == "success" and body["dedup_key"]
        for action in ("acknowledge", "resolve"):
            assert (
                client.post(
                    "/alerts/events", json={"routing_key": "R1", "event_action": action, "dedup_key": body["dedup_key"]}
                ).status_code
                == 202
            )
        queue_drained(database_url)
    [issue] = issues(emulators)
    assert issue["fields"]["priority"]["name"] == "High"
    [card] = cards(emulators)
    replies = [m["text"] for m in emulators.slack.thread("C0OPS", card["ts"])[1:]]
    assert replies == ["Acknowledged by monitoring.", "All alerts of this problem have cleared."]


def test_grafana_payload_and_hmac(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    """A notification sent as deploy/grafana-contact-point.yaml makes Grafana send it: that URL path, that
    Authorization header, the HMAC signature over the timestamp and the body, in the headers it names."""
    import hashlib
    import hmac
    import time
    from urllib.parse import urlsplit

    shipped = (Path(__file__).resolve().parents[2] / "deploy" / "grafana-contact-point.yaml").read_text()
    # Grafana replaces a provisioning file's $VARIABLES with its environment's values.
    values = {"TRIAGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "TRIAGE_GRAFANA_HMAC_SECRET": "grafana-secret"}
    [point] = yaml.safe_load(Template(shipped).substitute(values))["contactPoints"]
    [receiver] = point["receivers"]
    settings = receiver["settings"]
    assert receiver["type"] == "webhook" and settings["httpMethod"] == "POST"
    signing = settings["hmacConfig"]
    bot = make_bot(
        TRIAGE_GRAFANA_HMAC_SECRET="grafana-secret", TRIAGE_GRAFANA_HMAC_TIMESTAMP_HEADER=signing["timestampHeader"]
    )
    body = alertmanager_payload("G") | {
        "version": "1",
        "orgId": 1,
        "title": "[FIRING:1] G",
        "state": "alerting",
        "message": "**Firing**",
    }
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(signing["secret"].encode(), f"{stamp}:".encode() + raw, hashlib.sha256).hexdigest()
    path = urlsplit(settings["url"]).path
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"{settings['authorization_scheme']} {settings['authorization_credentials']}",
        signing["timestampHeader"]: stamp,
    }
    with httpx.Client(base_url=bot.url, timeout=30) as client:
        bad = client.post(path, content=raw, headers=headers | {signing["header"]: "00"})
        assert bad.status_code == 401 and bad.json()["error"] == "bad_signature"
        good = client.post(path, content=raw, headers=headers | {signing["header"]: signature})
        assert good.status_code == 202, good.text
        queue_drained(database_url)
    assert len(issues(emulators)) == 1


@pytest.mark.parametrize("fault", ["create-answer-lost", "jira-503-then-429", "slack-429", "slack-answer-lost"])
def test_outside_failures_delay_but_never_duplicate(
    bot: BotProcess, emulators: Emulators, database_url: str, fault: str
) -> None:
    if fault == "create-answer-lost":
        emulators.jira.set_fault(status=503, count=2, methods={"POST"}, path_contains="/issue", fail_after_commit=True)
    elif fault == "jira-503-then-429":
        emulators.jira.set_fault(status=503, count=3)
        emulators.jira.set_fault(status=429, count=2, retry_after="1")
    elif fault == "slack-429":
        emulators.slack.set_fault(status=429, count=3, retry_after=1)
    else:  # the card and the thread note are posted, but their answers are lost
        emulators.slack.set_fault(
            status=503, count=2, retry_after=None, methods={"chat.postMessage"}, after_commit=True
        )
    with bot.client() as client:
        post_alert(client, alertmanager_payload("F"))
        post_alert(client, alertmanager_payload("F", status="resolved"))
        queue_drained(database_url, timeout=90)
    [issue] = issues(emulators)
    assert [c["body"] for c in issue["fields"]["comment"]["comments"]] == ["All alerts of this problem have cleared."]
    [card] = cards(emulators)
    assert len(emulators.slack.thread("C0OPS", card["ts"])) == 2
