"""Customer reports from the apps: the session checked by the identity service, the report a ticket triaged in
Slack, its status for the customer, and e-mail when it is received and when it is closed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bot.db import make_engine
from bot.sandbox.identity_emulator import IdentityEmulator, create_identity_emulator
from bot.sandbox.server_thread import ServerThread
from bot.settings import SANDBOX_IDENTITY_TOKEN
from tests.conftest import Emulators
from tests.e2e.helpers import cards, issues, queue_drained
from tests.harness import BotProcess

JANE, JOHN, READONLY = "sandbox-session-jane", "sandbox-session-john", "sandbox-session-readonly"


@pytest.fixture
def identity() -> Iterator[tuple[IdentityEmulator, str]]:
    app = create_identity_emulator()
    with ServerThread(app) as server:
        yield app.state.emulator, f"{server.url}/introspect"


def identity_env(url: str) -> dict[str, str]:
    return {"TRIAGE_SESSION_INTROSPECTION_URL": url, "TRIAGE_SESSION_INTROSPECTION_TOKEN": SANDBOX_IDENTITY_TOKEN}


def report(subject: str = "Card payment fails", category: str = "billing", **extra: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "description": "Tapping Pay shows an error.\nSecond line <!channel> *bold*",
        "category": category,
        "app": {"name": "Shop", "version": "4.2.0", "platform": "ios"},
        "metadata": {"device": "iPhone 15", "locale": "en_GB", "build": 4200, "beta": False},
        **extra,
    }


def post(bot: BotProcess, body: Any, session: str | None = JANE, **headers: str) -> httpx.Response:
    sent = {"X-Session-Id": session} if session else {}
    return httpx.post(f"{bot.url}/reports", json=body, headers=sent | headers, timeout=10)


def counts(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tickets = conn.execute(text("SELECT count(*) FROM tickets")).scalar_one()
            jobs = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        return int(tickets), int(jobs)
    finally:
        engine.dispose()


def test_refusals_change_nothing(
    make_bot: Any, emulators: Emulators, database_url: str, identity: tuple[IdentityEmulator, str]
) -> None:
    emulator, url = identity
    bot: BotProcess = make_bot(
        **identity_env(url), TRIAGE_REPORTS_PER_MINUTE="2", TRIAGE_REPORT_ATTACHMENT_BYTES="2048"
    )
    before = counts(database_url)

    def refused(response: httpx.Response, status: int, error: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert counts(database_url) == before

    refused(post(bot, report(), session=None), 401, "no_session")
    refused(post(bot, report(), session="not-a-session"), 401, "invalid_session")
    refused(post(bot, report(), session="sandbox-session-expired"), 401, "invalid_session")
    refused(post(bot, report(), session="bad session id"), 401, "invalid_session")
    refused(post(bot, report(), session=READONLY), 403, "insufficient_scope")
    emulator.set_fault(status=503, retry_after=7, count=1)
    down = post(bot, report())
    refused(down, 503, "identity_unavailable")
    assert down.headers["Retry-After"] == "7"
    refused(
        httpx.post(
            f"{bot.url}/reports", content=b"{", headers={"X-Session-Id": JANE, "Content-Type": "application/json"}
        ),
        400,
        "invalid_json",
    )
    refused(
        httpx.post(
            f"{bot.url}/reports", content=b"subject=x", headers={"X-Session-Id": JANE, "Content-Type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
    )
    refused(post(bot, {"subject": "x"}), 422, "invalid_request")
    refused(post(bot, report(metadata={f"k{i}": "v" for i in range(31)})), 422, "invalid_request")
    refused(post(bot, report(metadata={"nested": {"a": 1}})), 422, "invalid_request")
    bad_file = {"filename": "a.png", "content_type": "image/png", "data": "not base64!"}
    refused(post(bot, report(attachments=[bad_file])), 422, "invalid_request")
    big = {"filename": "a.log", "content_type": "text/plain", "data": base64.b64encode(b"x" * 4096).decode()}
    refused(post(bot, report(attachments=[big])), 413, "attachment_too_large")
    huge = httpx.post(
        f"{bot.url}/reports",
        content=b"x" * 20_000_000,
        headers={"X-Session-Id": JANE, "Content-Type": "application/json"},
        timeout=30,
    )
    refused(huge, 413, "body_too_large")
    refused(post(bot, report(), **{"Idempotency-Key": "has space"}), 400, "bad_idempotency_key")

    # The same Idempotency-Key gives the first answer again and opens nothing new; another body with it is refused.
    first = post(bot, report(), **{"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    again = post(bot, report(), **{"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (201, first.json(), "true")
    assert post(bot, report("Other"), **{"Idempotency-Key": "k-1"}).json()["error"] == "idempotency_key_reused"
    # Another customer's key is their own.
    assert post(bot, report(), session=JOHN, **{"Idempotency-Key": "k-1"}).json()["id"] != first.json()["id"]

    # Two reports a minute each (as configured): the third is refused with Retry-After.
    assert post(bot, report("second")).status_code == 201
    limited = post(bot, report("third"))
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 61
    assert limited.json()["error"] == "rate_limited"
    assert counts(database_url)[0] == 3  # Jane's two and John's one
    queue_drained(database_url)

    # Status: one's own report, not anyone else's.
    ref = first.json()["id"]
    mine = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JANE})
    assert mine.status_code == 200 and mine.json()["status"] == "assigned"  # billing goes straight to payments
    theirs = httpx.get(f"{bot.url}/reports/{ref}", headers={"X-Session-Id": JOHN})
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found"
    assert httpx.get(f"{bot.url}/reports/{ref}").status_code == 401
    assert json.dumps(emulators.slack.messages()).count("jane.doe@example.com") == 0
    assert [i["fields"]["project"]["key"] for i in issues(emulators)] == ["SUP", "SUP", "SUP"]
    assert len(cards(emulators, "C0PAY")) == 3
