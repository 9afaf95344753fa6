"""Schemathesis against the running server's own OpenAPI document: every public operation, with requests built
from its request body schema (valid ones and deliberately invalid ones), each sent with valid credentials, with
forged ones, and with none. No 5xx, no hang, every 4xx a JSON error, and nothing changes on any 4xx (or any GET):
every table's rows and the calls that change something in Jira or Slack are counted before and after each request."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from bot.db.engine import make_engine
from tests.conftest import Emulators
from tests.faults.conftest import examples, leaks
from tests.harness import WEBHOOK_TOKEN, BotProcess, table_counts, wait_until

JIRA_SECRET = "fuzz-jira-webhook-secret-0123"
GRAFANA_SECRET = "fuzz-grafana-hmac-secret-0123"
JANE = "sandbox-session-jane"
OPERATIONS = {
    "POST /alerts/alertmanager",
    "POST /alerts/grafana",
    "POST /alerts/events",
    "POST /jira/webhook",
    "POST /slack/events",
    "GET /api/tickets",
    "GET /api/tickets/{ticket_id}",
    "POST /reports",
    "GET /reports/{ref}",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
}
CREDENTIALS = ("valid", "forged", "none")
CREDENTIAL_HEADERS = (
    "authorization",
    "x-session-id",
    "x-hub-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
    "x-grafana-alerting-signature",
)


def fuzz_env(identity_env: dict[str, str]) -> dict[str, str]:
    """Intake only (no workers): whatever changes, a request changed."""
    return {
        "TRIAGE_WORKERS": "0",
        "TRIAGE_JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "TRIAGE_GRAFANA_HMAC_SECRET": GRAFANA_SECRET,
        "TRIAGE_LOG_LEVEL": "WARNING",
        **identity_env,
    }


def _body(prepared: requests.PreparedRequest) -> bytes:
    body = prepared.body or b""
    return body.encode() if isinstance(body, str) else body


def with_credentials(prepared: requests.PreparedRequest, path: str, how: str, emulators: Emulators) -> None:
    """Valid credentials for the operation, the generated (forged) ones, or none at all."""
    if how == "forged":
        return
    for name in CREDENTIAL_HEADERS:
        prepared.headers.pop(name, None)
    if how == "none":
        url = urllib.parse.urlsplit(prepared.url or "")
        query = [(k, v) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True) if k != "token"]
        prepared.url = urllib.parse.urlunsplit(url._replace(query=urllib.parse.urlencode(query)))
        return
    body = _body(prepared)
    if path.startswith(("/alerts/", "/api/", "/metrics")):
        prepared.headers["Authorization"] = f"Bearer {WEBHOOK_TOKEN}"
    if path == "/alerts/grafana":
        digest = hmac.new(GRAFANA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        prepared.headers["X-Grafana-Alerting-Signature"] = digest
    if path == "/jira/webhook":
        digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
        prepared.headers["X-Hub-Signature"] = f"sha256={digest}"
    if path == "/slack/events":
        signed = emulators.slack.signed_request(body.decode(errors="surrogateescape"))
        for name in ("X-Slack-Request-Timestamp", "X-Slack-Signature"):
            prepared.headers[name] = signed[name]
    if path.startswith("/reports"):
        prepared.headers["X-Session-Id"] = JANE


class Outside:
    """Everything a request could change: the bot's tables and what the emulators were asked."""

    def __init__(self, database_url: str, emulators: Emulators) -> None:
        self.engine = make_engine(database_url)
        self.emulators = emulators

    def now(self) -> dict[str, int]:
        return table_counts(self.engine) | {
            "jira writes": sum(1 for r in self.emulators.jira.requests() if r["method"] != "GET"),
            "slack writes": sum(1 for r in self.emulators.slack.requests() if not _reads(r["method"])),
        }

    def settled(self) -> dict[str, int]:
        """The state once nothing moves (Slack's listeners may still act for a moment after their ack)."""
        last: list[dict[str, int]] = [self.now()]

        def still() -> bool:
            time.sleep(0.05)
            now = self.now()
            same = now == last[0]
            last[0] = now
            return same

        wait_until(still, timeout=10, interval=0, what="the bot to settle")
        return last[0]


def fuzz(bot: BotProcess, database_url: str, emulators: Emulators, per_operation: int) -> Counter[str]:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{bot.url}/openapi.json", timeout=10).json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == OPERATIONS
    outside = Outside(database_url, emulators)
    session = requests.Session()
    tally: Counter[str] = Counter()
    try:
        before = outside.settled()
        for operation in operations:
            strategy = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
            )

            @settings(
                max_examples=per_operation,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                print_blob=True,
            )
            @given(case=strategy, how=st.sampled_from(CREDENTIALS))
            def one(case: Any, how: str) -> None:
                nonlocal before
                kwargs = case.as_transport_kwargs(base_url=bot.url)
                prepared = requests.Request(**kwargs).prepare()
                with_credentials(prepared, operation.path, how, emulators)
                what = f"{operation.label} ({how} credentials): {case.as_curl_command()[:1500]}"
                started = time.monotonic()
                response = session.send(prepared, timeout=20)
                assert time.monotonic() - started < 10, f"slow answer: {what}"
                assert response.status_code < 500, f"{response.status_code} {response.text[:500]}\n{what}"
                tally[f"{operation.label} {response.status_code}"] += 1
                if response.status_code >= 400:
                    problem = response.json()
                    assert isinstance(problem, dict) and problem.get("error"), f"{response.text[:300]}\n{what}"
                    assert not leaks(response.text), f"{leaks(response.text)} in {response.text[:300]}\n{what}"
                if response.status_code >= 400 or operation.method.upper() == "GET":
                    after = outside.now()
                    assert after == before, f"{response.status_code} changed {_diff(before, after)}\n{what}"
                else:
                    before = outside.settled()

            one()
    finally:
        session.close()
        outside.engine.dispose()
    return tally


def _reads(method: str) -> bool:
    """A Slack Web API method that changes nothing (Bolt asks auth.test once, on the first signed request)."""
    return method in ("auth.test", "conversations.history", "conversations.replies") or method.startswith(
        ("users.", "usergroups.")
    )


def _diff(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (before.get(k, 0), v) for k, v in after.items() if before.get(k) != v}


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.faults)], indirect=True
)
def test_every_public_operation_fuzzed_from_the_openapi_document(
    make_bot: Any, emulators: Emulators, database_url: str, identity: Any, counted: Any
) -> None:
    _, identity_env = identity
    bot: BotProcess = make_bot(**fuzz_env(identity_env))
    per_operation = examples(full=150, quick=12)
    tally = fuzz(bot, database_url, emulators, per_operation)
    statuses: Counter[str] = Counter()
    for key, n in tally.items():
        statuses[key.rsplit(" ", 1)[1]] += n
    # Every operation got through with valid input at least once, and was refused at least once.
    for label in OPERATIONS:
        answered = {key.rsplit(" ", 1)[1] for key in tally if key.rsplit(" ", 1)[0] == label}
        assert answered, label
    assert "Traceback" not in bot.log() and "unexpected error" not in bot.log(), bot.log()[-3000:]
    counted(
        f"{len(OPERATIONS)} operations x {per_operation} examples = {sum(tally.values())} requests on "
        f"{database_url.split(':')[0]}; answers {dict(sorted(statuses.items()))}; no 5xx, every 4xx JSON, "
        "no state change on any 4xx or GET"
    )
