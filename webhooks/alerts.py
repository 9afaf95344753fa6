"""POST /alerts/{alertmanager,grafana,events}: monitoring notifications in, one job per problem queued.

The stored event is the record of what was said; its job carries only the event's id, and the worker reads
the notification from the event with the same parser used here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import insert
from sqlmodel import Session

from bot.clock import utcnow
from bot.db.models import InboundEvent
from bot.jobs import queue
from bot.metrics import ALERTS_RECEIVED, NOTIFICATIONS_RECEIVED
from bot.runtime import Runtime
from bot.tickets.alerts import KIND, lane_for
from bot.tickets.store import is_open
from webhooks.auth import check_grafana_signature, require_token
from webhooks.deps import RuntimeDep, WakerDep
from webhooks.errors import Refusal, jsonable_errors
from webhooks.intake import read_json_object
from webhooks.openapi import BEARER, json_body
from workflows.alerts import AlertmanagerWebhook, Event, GrafanaWebhook, GroupNotification, Source, notification_from
from workflows.routing import is_test

router = APIRouter(prefix="/alerts", tags=["alerts"])
log = logging.getLogger("triage.alerts")
IGNORED_TEST = "a test notification, ignored as the policy says (test_notifications: ignore): nothing was opened"


class _RecentlyOpen:
    """Groups seen with an open ticket in the last ``seconds``: their repeats skip the lookup. Only a job's priority
    rides on it, never what the job does: a group closed meanwhile is at worst news queued as routine, briefly."""

    def __init__(self, seconds: float = 10.0, size: int = 10_000) -> None:
        self.seconds, self.size = seconds, size
        self._seen: dict[str, float] = {}

    def known(self, dedup_key: str) -> bool:
        seen = self._seen.get(dedup_key)
        return seen is not None and time.monotonic() - seen < self.seconds

    def remember(self, dedup_key: str) -> None:
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[dedup_key] = time.monotonic()


OPEN = _RecentlyOpen()
_STORE_EVENT = insert(InboundEvent.__table__).returning(InboundEvent.__table__.c.id)  # type: ignore[attr-defined]


def storing(source: Source, body: str, note: GroupNotification) -> Callable[[Session], int]:
    """The write that stores the event with its job (committed together with other requests' writes: once it is
    committed, nothing of it can be lost). A group with no open ticket is news: its job goes before the repeats
    of known problems."""
    received_at = utcnow()

    def write(session: Session) -> int:
        row = {"source": source.value, "body": body, "received_at": received_at}
        event_id = session.connection().execute(_STORE_EVENT, row).scalar_one()
        known = OPEN.known(note.dedup_key) or is_open(session, note.dedup_key)
        if known:
            OPEN.remember(note.dedup_key)
        priority = queue.ROUTINE if known else queue.URGENT
        queue.push(session, kind=KIND, lane=lane_for(note.dedup_key), payload={"event_id": event_id}, priority=priority)
        return int(event_id)

    return write


async def _accept(
    runtime: Runtime, waker: WakerDep, source: Source, data: dict[str, Any], raw: bytes
) -> tuple[GroupNotification, bool]:
    """The notification, and whether it was stored (a test notification the policy ignores is not)."""
    try:
        note = notification_from(source, data)
    except ValidationError as exc:
        raise Refusal(422, "invalid_payload", jsonable_errors(exc.errors())) from None
    NOTIFICATIONS_RECEIVED.labels(source.value).inc()
    if runtime.policy.test_notifications.action == "ignore" and is_test(runtime.policy, note):
        log.info("test notification ignored", extra={"source": source.value, "dedup_key": note.dedup_key})
        return note, False
    await runtime.intake.write(storing(source, raw.decode(), note))
    ALERTS_RECEIVED.labels(source.value).inc(max(1, len(note.alerts)))
    waker.wake()
    return note, True


def _accepted(accepted: tuple[GroupNotification, bool]) -> JSONResponse:
    note, stored = accepted
    if not stored:
        return JSONResponse({"status": "ignored", "detail": IGNORED_TEST, "dedup_key": note.dedup_key}, 202)
    return JSONResponse({"status": "accepted", "dedup_key": note.dedup_key}, status_code=202)


@router.post(
    "/alertmanager",
    status_code=202,
    openapi_extra=json_body(AlertmanagerWebhook, "Alertmanager's webhook message (version 4)", BEARER),
)
async def alertmanager(request: Request, runtime: RuntimeDep, waker: WakerDep) -> JSONResponse:
    """Alertmanager webhook_config receiver (payload version 4)."""
    require_token(request, runtime.settings.effective_webhook_token())
    raw, data = await read_json_object(request, runtime.settings.max_body_bytes)
    return _accepted(await _accept(runtime, waker, Source.ALERTMANAGER, data, raw))


@router.post(
    "/grafana",
    status_code=202,
    openapi_extra=json_body(GrafanaWebhook, "Grafana's webhook contact point message", BEARER),
)
async def grafana(request: Request, runtime: RuntimeDep, waker: WakerDep) -> JSONResponse:
    """Grafana unified alerting webhook contact point; HMAC-checked when TRIAGE_GRAFANA_HMAC_SECRET is set."""
    require_token(request, runtime.settings.effective_webhook_token())
    raw, data = await read_json_object(request, runtime.settings.max_body_bytes)
    secret = runtime.settings.grafana_hmac_secret
    if secret is not None:
        check_grafana_signature(request, raw, secret.get_secret_value(), runtime.settings.grafana_hmac_timestamp_header)
    return _accepted(await _accept(runtime, waker, Source.GRAFANA, data, raw))


@router.post(
    "/events",
    status_code=202,
    openapi_extra=json_body(Event, "an event in the shape of PagerDuty's Events API v2", BEARER),
)
async def events(request: Request, runtime: RuntimeDep, waker: WakerDep) -> JSONResponse:
    """PagerDuty Events API v2 shaped events; answers like PagerDuty does."""
    require_token(request, runtime.settings.effective_webhook_token())
    raw, data = await read_json_object(request, runtime.settings.max_body_bytes)
    if data.get("event_action") == "trigger" and not data.get("dedup_key"):
        # PagerDuty makes up a dedup key for a trigger without one; it is stored with the event.
        data = {**data, "dedup_key": uuid.uuid4().hex}
        raw = json.dumps(data).encode()
    note, stored = await _accept(runtime, waker, Source.EVENTS, data, raw)
    message = "Event processed" if stored else IGNORED_TEST
    return JSONResponse({"status": "success", "message": message, "dedup_key": note.extra["dedup_key"]}, 202)
