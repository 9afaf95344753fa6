"""Bad input gets a clear 4xx JSON error and changes nothing; good input is persisted before 202."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from sqlalchemy import text

from bot.db.engine import make_engine
from tests.harness import WEBHOOK_TOKEN, BotProcess, alertmanager_payload


def _counts(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return (
                int(conn.execute(text("SELECT count(*) FROM inbound_events")).scalar() or 0),
                int(conn.execute(text("SELECT count(*) FROM jobs")).scalar() or 0),
            )
    finally:
        engine.dispose()


def test_bad_requests_are_refused_with_json_and_write_nothing(make_bot: Any, database_url: str) -> None:
    bot: BotProcess = make_bot(TRIAGE_WORKERS="0", TRIAGE_MAX_BODY_BYTES="65536")
    good = json.dumps(alertmanager_payload("X")).encode()
    json_type = {"Content-Type": "application/json"}
    bearer = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    missing_group = alertmanager_payload("X")
    del missing_group["groupKey"]
    cases: list[tuple[str, str, dict[str, str], bytes, int, str]] = [
        ("no token", "/alerts/alertmanager", json_type, good, 401, "unauthorized"),
        (
            "wrong token",
            "/alerts/alertmanager",
            json_type | {"Authorization": "Bearer nope"},
            good,
            401,
            "unauthorized",
        ),
        (
            "wrong scheme",
            "/alerts/grafana",
            json_type | {"Authorization": f"Token {WEBHOOK_TOKEN}"},
            good,
            401,
            "unauthorized",
        ),
        ("not json", "/alerts/alertmanager", json_type | bearer, b"{not json", 400, "invalid_json"),
        (
            "form body",
            "/alerts/alertmanager",
            {"Content-Type": "application/x-www-form-urlencoded"} | bearer,
            b"a=b",
            415,
            "unsupported_media_type",
        ),
        (
            "too large",
            "/alerts/alertmanager",
            json_type | bearer,
            b'{"x": "' + b"a" * 70_000 + b'"}',
            413,
            "body_too_large",
        ),
        ("array", "/alerts/events", json_type | bearer, b"[]", 422, "invalid_request"),
        (
            "wrong version",
            "/alerts/alertmanager",
            json_type | bearer,
            json.dumps(alertmanager_payload("X") | {"version": "3"}).encode(),
            422,
            "invalid_payload",
        ),
        (
            "no groupKey",
            "/alerts/alertmanager",
            json_type | bearer,
            json.dumps(missing_group).encode(),
            422,
            "invalid_payload",
        ),
        (
            "bad status",
            "/alerts/grafana",
            json_type | bearer,
            json.dumps(alertmanager_payload("X") | {"status": "burning"}).encode(),
            422,
            "invalid_payload",
        ),
        (
            "events without payload",
            "/alerts/events",
            json_type | bearer,
            b'{"routing_key": "r", "event_action": "trigger"}',
            422,
            "invalid_payload",
        ),
    ]
    with httpx.Client(base_url=bot.url, timeout=10) as client:
        for name, path, headers, body, status, error in cases:
            response = client.post(path, content=body, headers=headers)
            assert response.status_code == status, (name, response.text)
            assert response.headers["content-type"].startswith("application/json"), name
            assert response.json()["error"] == error, (name, response.json())
            assert response.json()["detail"], name
        # Chunked upload without Content-Length is still cut at the limit, before parsing.
        chunks = (b"x" * 8192 for _ in range(20))
        response = client.post("/alerts/alertmanager", content=chunks, headers=json_type | bearer)
        assert response.status_code == 413
    assert _counts(database_url) == (0, 0)


def test_good_posts_are_persisted_before_the_answer(make_bot: Any, database_url: str) -> None:
    bot: BotProcess = make_bot(TRIAGE_WORKERS="0")
    with bot.client() as client:
        answer = client.post("/alerts/alertmanager", json=alertmanager_payload("Y"))
        assert answer.status_code == 202
        assert answer.json()["dedup_key"] == 'alertmanager|triage-bot|{}:{alertname="AlertY"}'
    assert _counts(database_url) == (1, 1)  # the event and its job, with no worker running
    basic = base64.b64encode(f"alertmanager:{WEBHOOK_TOKEN}".encode()).decode()
    with httpx.Client(base_url=bot.url, timeout=10) as client:  # basic auth with the token as password
        answer = client.post(
            "/alerts/alertmanager", json=alertmanager_payload("Y"), headers={"Authorization": f"Basic {basic}"}
        )
        assert answer.status_code == 202
        metrics = client.get("/metrics")
        assert metrics.status_code == 401
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert 'triage_alerts_received_total{source="alertmanager"} 2.0' in metrics.text
        assert 'triage_jobs{status="pending"} 2.0' in metrics.text
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["checks"] == {"database": "ok", "schema": "ok"}


def test_nul_characters_and_deep_nesting(make_bot: Any, database_url: str) -> None:
    """A NUL in an alert (PostgreSQL text cannot hold one) is dropped, not left to block the group's lane."""
    bot: BotProcess = make_bot()
    with bot.client() as client:
        deep = client.post(
            "/alerts/events", content=b"[" * 100_000 + b"]" * 100_000, headers={"Content-Type": "application/json"}
        )
        assert deep.status_code == 400 and deep.json()["error"] == "invalid_json"
        assert client.get("/api/tickets/99999999999999999999").status_code == 422
        body = alertmanager_payload("N", annotations={"summary": "bad\u0000byte"})
        assert client.post("/alerts/alertmanager", json=body).status_code == 202
        from tests.e2e.helpers import queue_drained

        queue_drained(database_url)
        [ticket] = client.get("/api/tickets").json()["tickets"]
        assert ticket["jira_key"] and ticket["title"] == "AlertN: badbyte"
