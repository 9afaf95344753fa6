"""POST /alerts/{alertmanager,grafana,events}: monitoring notifications in, one job per problem queued."""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from bot import queue
from bot.alert_processing import KIND, lane_for
from bot.clock import utcnow
from bot.db import transaction
from bot.metrics import ALERTS_RECEIVED, NOTIFICATIONS_RECEIVED
from bot.models import InboundEvent
from bot.runtime import Runtime
from webhooks.auth import check_grafana_signature, require_token
from webhooks.deps import PoolDep, RuntimeDep
from webhooks.errors import Refusal, jsonable_errors
from webhooks.intake import read_json_object
from workflows.alerts import (
    AlertmanagerWebhook,
    Event,
    GrafanaWebhook,
    GroupNotification,
    from_alertmanager,
    from_event,
    from_grafana,
)

router = APIRouter(prefix="/alerts", tags=["alerts"])
M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, "invalid_payload", jsonable_errors(exc.errors())) from None


def persist(runtime: Runtime, source: str, raw: bytes, notes: list[GroupNotification]) -> int:
    """The event and its jobs in one transaction: once this returns, nothing of it can be lost."""
    received_at = utcnow()
    with transaction(runtime.engine) as session:
        event = InboundEvent(source=source, body=raw.decode(), received_at=received_at)
        session.add(event)
        session.flush()
        for note in notes:
            queue.enqueue(
                session,
                kind=KIND,
                lane=lane_for(note.dedup_key),
                payload={"event_id": event.id, "received_at": received_at.isoformat(), "notification": note.to_json()},
            )
        assert event.id is not None
        return event.id


async def _accept(
    request: Request, runtime: Runtime, pool: PoolDep, source: str, raw: bytes, notes: list[GroupNotification]
) -> int:
    event_id = await run_in_threadpool(persist, runtime, source, raw, notes)
    NOTIFICATIONS_RECEIVED.labels(source).inc()
    ALERTS_RECEIVED.labels(source).inc(sum(max(1, len(note.alerts)) for note in notes))
    if pool is not None:
        pool.wake()
    return event_id


async def _alert_group(request: Request, runtime: Runtime, pool: PoolDep, source: str) -> JSONResponse:
    require_token(request, runtime.settings.effective_webhook_token())
    raw, data = await read_json_object(request, runtime.settings.max_body_bytes)
    if source == "grafana":
        secret = runtime.settings.grafana_hmac_secret
        if secret is not None:
            check_grafana_signature(
                request, raw, secret.get_secret_value(), runtime.settings.grafana_hmac_timestamp_header
            )
        note = from_grafana(_validate(GrafanaWebhook, data))
    else:
        note = from_alertmanager(_validate(AlertmanagerWebhook, data))
    event_id = await _accept(request, runtime, pool, source, raw, [note])
    return JSONResponse({"status": "accepted", "event_id": event_id, "dedup_key": note.dedup_key}, status_code=202)


@router.post("/alertmanager", status_code=202)
async def alertmanager(request: Request, runtime: RuntimeDep, pool: PoolDep) -> JSONResponse:
    """Alertmanager webhook_config receiver (payload version 4)."""
    return await _alert_group(request, runtime, pool, "alertmanager")


@router.post("/grafana", status_code=202)
async def grafana(request: Request, runtime: RuntimeDep, pool: PoolDep) -> JSONResponse:
    """Grafana unified alerting webhook contact point; HMAC-checked when TRIAGE_GRAFANA_HMAC_SECRET is set."""
    return await _alert_group(request, runtime, pool, "grafana")


@router.post("/events", status_code=202)
async def events(request: Request, runtime: RuntimeDep, pool: PoolDep) -> JSONResponse:
    """PagerDuty Events API v2 shaped events; answers like PagerDuty does."""
    require_token(request, runtime.settings.effective_webhook_token())
    raw, data = await read_json_object(request, runtime.settings.max_body_bytes)
    event = _validate(Event, data)
    note = from_event(event, generated_dedup_key=uuid.uuid4().hex)
    dedup = note.extra["dedup_key"]
    if event.dedup_key is None:
        raw = json.dumps({**data, "dedup_key": dedup}).encode()
    await _accept(request, runtime, pool, "events", raw, [note])
    return JSONResponse({"status": "success", "message": "Event processed", "dedup_key": dedup}, status_code=202)
