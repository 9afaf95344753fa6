"""Hostile requests at every public endpoint, each refused with a JSON error that changes nothing: deep and huge
JSON, wrong and missing content types, bodies that are not UTF-8, forged, replayed and malformed Slack and Jira
signatures, numbers past what the database holds; and the regressions of what the fuzzing found. Credentials are
compared in constant time (hmac.compare_digest), checked in the source."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.db.engine import make_engine
from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.e2e.helpers import queue_drained
from tests.faults.conftest import SECRETS, leaks
from tests.faults.test_fuzz_endpoints import JANE, JIRA_SECRET, fuzz_env
from tests.harness import WEBHOOK_TOKEN, BotProcess, table_counts

REPO = Path(__file__).resolve().parents[2]
BEARER = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
JSON = {"Content-Type": "application/json"}


def _jira_signed(body: bytes, **headers: str) -> dict[str, str]:
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature": f"sha256={digest}", **JSON, **headers}


def test_hostile_requests_are_refused_and_change_nothing(
    make_bot: Any, emulators: Emulators, database_url: str, identity: Any, counted: Any
) -> None:
    _, identity_env = identity
    bot: BotProcess = make_bot(**fuzz_env(identity_env), TRIAGE_MAX_BODY_BYTES="65536")
    engine = make_engine(database_url)
    refused: list[str] = []

    def refuses(what: str, response: httpx.Response, status: int, error: str | None = None) -> None:
        assert response.status_code == status, f"{what}: {response.status_code} {response.text[:300]}"
        problem = response.json()
        assert isinstance(problem, dict) and problem.get("error"), f"{what}: {response.text[:300]}"
        assert not leaks(response.text), f"{what}: {leaks(response.text)} in the answer"
        if error is not None:
            assert problem["error"] == error, f"{what}: {problem}"
        assert table_counts(engine) == before, f"{what} changed something"
        refused.append(what)

    def post(path: str, content: bytes | str, headers: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{bot.url}{path}", content=content, headers=headers, timeout=30)

    try:
        before = table_counts(engine)
        deep = b"[" * 100_000 + b"]" * 100_000
        wide = json.dumps({"groupKey": "x", "status": "firing", "pad": "y" * 70_000}).encode()
        for path in ("/alerts/alertmanager", "/alerts/events"):
            refuses(f"{path} deep JSON", post(path, deep, BEARER | JSON), 413)  # 200 kB: over the limit first
            refuses(f"{path} deep JSON under the limit", post(path, b"[" * 30_000, BEARER | JSON), 400)
            refuses(f"{path} huge JSON", post(path, wide, BEARER | JSON), 413, "body_too_large")
            refuses(f"{path} no content type", post(path, b"{}", BEARER), 415, "unsupported_media_type")
            refuses(f"{path} text/plain", post(path, b"{}", BEARER | {"Content-Type": "text/plain"}), 415)
            refuses(f"{path} not UTF-8", post(path, b'{"a": "\xff"}', BEARER | JSON), 400, "invalid_json")
            refuses(f"{path} not an object", post(path, b"[1]", BEARER | JSON), 422)
            refuses(f"{path} no token", post(path, b"{}", JSON), 401, "unauthorized")
        # Fuzzing found: past what a 32-bit column holds, accepted and then failing in the worker on PostgreSQL.
        huge_count = alertmanager_payload("T") | {"truncatedAlerts": 2**40}
        refuses("truncatedAlerts past 2**31", post("/alerts/alertmanager", json.dumps(huge_count), BEARER | JSON), 422)
        # Fuzzing found: a ticket id past 2**31 answered 500 on PostgreSQL.
        refuses("a ticket id past 2**31", httpx.get(f"{bot.url}/api/tickets/2147483648", headers=BEARER), 422)

        grafana = json.dumps(alertmanager_payload("G")).encode()
        refuses("grafana without its HMAC", post("/alerts/grafana", grafana, BEARER | JSON), 401)
        signature = "é" * 64  # fuzzing found: a signature with a non-ASCII character answered 500
        refuses(
            "grafana with a non-ASCII signature",
            post(
                "/alerts/grafana",
                grafana,
                BEARER | JSON | {"X-Grafana-Alerting-Signature": signature.encode("latin-1")},
            ),
            401,
        )

        jira_body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"key": "OPS-1"}}).encode()
        refuses("jira unsigned", post("/jira/webhook", jira_body, JSON), 401, "missing_signature")
        forged = {"X-Hub-Signature": "sha256=" + "0" * 64} | JSON
        refuses("jira forged", post("/jira/webhook", jira_body, forged), 401, "bad_signature")
        refuses(
            "jira non-ASCII signature",
            post("/jira/webhook", jira_body, JSON | {"X-Hub-Signature": ("sha256=" + signature).encode("latin-1")}),
            401,
        )
        tampered = jira_body.replace(b"OPS-1", b"OPS-2")
        refuses("jira signed for another body", post("/jira/webhook", tampered, _jira_signed(jira_body)), 401)
        refuses(
            "jira with the webhook token in the URL instead of the secret",
            post(f"/jira/webhook?token={WEBHOOK_TOKEN}", jira_body, JSON),
            401,
        )

        slack = emulators.slack
        click = "payload=" + json.dumps({"type": "block_actions", "user": {"id": "U0OP1"}, "actions": []})
        refuses("slack unsigned", post("/slack/events", click, {}), 401, "missing_signature")
        stale = slack.signed_request(click, timestamp=int(time.time()) - 600)
        refuses("slack replayed (10 minutes old)", post("/slack/events", click, stale), 401, "stale_signature")
        forged_slack = slack.signed_request(click) | {"X-Slack-Signature": "v0=" + "0" * 64}
        refuses("slack forged", post("/slack/events", click, forged_slack), 401, "bad_signature")
        odd = slack.signed_request(click) | {"X-Slack-Signature": ("v0=" + signature).encode("latin-1")}
        refuses("slack non-ASCII signature", post("/slack/events", click, odd), 401)
        refuses(
            "slack timestamp not a number",
            post("/slack/events", click, slack.signed_request(click) | {"X-Slack-Request-Timestamp": "soon"}),
            401,
        )
        refuses(
            "slack body over the limit, unsigned",
            post("/slack/events", "payload=" + "x" * 70_000, {}),
            413,
        )
        # Fuzzing found: Bolt parsed these before checking anything, and answered 500.
        for body, status in (("payload=", 400), ("payload=%7B", 400), ("payload=1", 422), ("payload=%5B%5D", 422)):
            refuses(f"slack signed {body!r}", post("/slack/events", body, slack.signed_request(body)), status)
        latin, stamp = b"payload=\xff", str(int(time.time()))
        digest = hmac.new(slack.signing_secret.encode(), f"v0:{stamp}:".encode() + latin, hashlib.sha256).hexdigest()
        headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}
        refuses("slack signed, not UTF-8", post("/slack/events", latin, headers), 400)

        refuses("report deep JSON", post("/reports", b"[" * 30_000, JSON | {"X-Session-Id": JANE}), 400)
        refuses(
            "report, no content type", post("/reports", b"{}", {"X-Session-Id": JANE}), 415, "unsupported_media_type"
        )
        refuses("report, no session", post("/reports", b"{}", JSON), 401, "no_session")
    finally:
        engine.dispose()
    assert "Traceback" not in bot.log(), bot.log()[-3000:]
    counted(f"{len(refused)} hostile requests on {database_url.split(':')[0]}: each a JSON 4xx, nothing changed")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_slash_command_that_says_payload_is_read(make_bot: Any, emulators: Emulators) -> None:
    """Fuzzing found: Bolt reads any form with the word "payload" in it as an interaction, so `/triage list
    payload` was an empty request, answered 404 and lost."""
    bot: BotProcess = make_bot(TRIAGE_WORKERS="0")
    body, headers = emulators.slack.slash_command("U0OP1", "list payload", "C0OPS")
    answer = httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert "I can list by state or team" in answer.json()["text"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_replayed_jira_delivery_is_stored_once(make_bot: Any, emulators: Emulators, database_url: str) -> None:
    """Jira signs no timestamp: a delivery sent again (Jira's retry, or a replay) is known by its identifier."""
    bot: BotProcess = make_bot(TRIAGE_JIRA_WEBHOOK_SECRET=JIRA_SECRET)
    with bot.client() as client:
        assert client.post("/alerts/alertmanager", json=alertmanager_payload("J")).status_code == 202
    queue_drained(database_url)
    [issue] = emulators.jira.issues()
    engine = make_engine(database_url)
    try:
        body = json.dumps(
            {"webhookEvent": "comment_created", "issue": {"key": issue["key"]}, "comment": {"id": "1", "body": "hi"}}
        ).encode()
        headers = _jira_signed(body, **{"X-Atlassian-Webhook-Identifier": "delivery-1"})
        first = httpx.post(f"{bot.url}/jira/webhook", content=body, headers=headers, timeout=10)
        assert first.json()["status"] == "accepted", first.text
        queue_drained(database_url)
        before = table_counts(engine)
        again = httpx.post(f"{bot.url}/jira/webhook", content=body, headers=headers, timeout=10)
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        time.sleep(0.5)  # time for the workers, had anything been queued
        assert table_counts(engine) == before
    finally:
        engine.dispose()


def test_credentials_are_compared_in_constant_time() -> None:
    """Every comparison of a presented token, secret or signature in the bot's code goes through
    hmac.compare_digest: none with == or != (whose time depends on how much of the guess is right)."""
    suspicious = ("token", "secret", "signature", "password", "csrf")
    found = []
    for path in sorted((REPO / "webhooks").rglob("*.py")) + sorted((REPO / "bot").rglob("*.py")):
        if "sandbox" in path.parts:  # the emulators stand in for the outside systems
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Constant) and s.value in (None, "") for s in sides):
                    continue
                source = ast.unparse(node).lower()
                if any(word in source for word in suspicious):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, found
    ours = [*(REPO / "webhooks").rglob("*.py"), *(p for p in (REPO / "bot").rglob("*.py") if "sandbox" not in p.parts)]
    uses = sum(p.read_text().count("compare_digest(") for p in ours)
    # Bearer tokens (bot/credentials, for serve and a worker's exporter), Grafana and Jira HMACs, Slack's signature,
    # the console's token and CSRF.
    assert uses >= 5


def test_the_leak_scan_finds_what_it_looks_for() -> None:
    """The scan every test here ends with (tests/faults/conftest.py) would see a secret or an address."""
    assert leaks(f'{{"msg": "calling with Bearer {WEBHOOK_TOKEN}"}}') == ["the webhook token"]
    assert leaks("sent to jane.doe@example.com") == ["the address of customer-1001"]
    assert leaks("sent to jane.doe@example.com", addresses=False) == []
    assert len(SECRETS) >= 10
