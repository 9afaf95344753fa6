"""POST /slack/events: Slack interactivity through slack-bolt, which checks every request's signature
(and its timestamp, against replays) over the raw body before anything is parsed.

A click is stored with its job before the listener acks, so an acknowledged click is never lost; the move
itself is decided by a worker (bot.slack_actions), and the clicker hears back there.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError

from bot import queue
from bot.alert_processing import ticket_lane
from bot.db import transaction
from bot.models import InboundEvent
from bot.runtime import Runtime
from bot.slack_actions import KIND
from workflows.cards import ACTION_PREFIX
from workflows.transitions import Action


def persist_click(runtime: Runtime, click: dict[str, Any], delivery: str) -> bool:
    try:
        with transaction(runtime.engine) as session:
            event = InboundEvent(source="slack", delivery_id=delivery[:255], body=json.dumps(click))
            session.add(event)
            session.flush()
            queue.enqueue(session, kind=KIND, lane=ticket_lane(int(click["ticket"])), payload={"event_id": event.id})
        return True
    except IntegrityError:
        return False  # Slack retried a click we already have


def build_bolt_app(runtime: Runtime, wake: Any) -> AsyncApp:
    base_url, token, secret = runtime.settings.effective_slack()
    app = AsyncApp(client=AsyncWebClient(token=token, base_url=base_url), signing_secret=secret)

    @app.action(re.compile(f"^{re.escape(ACTION_PREFIX)}"))
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        try:
            value = json.loads(action.get("value") or "{}")
            click = {
                "action": Action(action["action_id"].removeprefix(ACTION_PREFIX)).value,
                "ticket": int(value["ticket"]),
                "version": int(value["version"]),
                "user": str(body["user"]["id"]),
                "channel": str((body.get("channel") or {}).get("id") or body["container"]["channel_id"]),
            }
        except (KeyError, TypeError, ValueError):
            await ack()
            return
        delivery = f"{click['user']}:{action.get('action_ts', '')}:{action['action_id']}"
        await run_in_threadpool(persist_click, runtime, click, delivery)
        await ack()
        wake()

    return app


def install(api_app: Any, runtime: Runtime, wake: Any) -> None:
    handler = AsyncSlackRequestHandler(build_bolt_app(runtime, wake))
    router = APIRouter(prefix="/slack", tags=["slack"])

    @router.post("/events")
    async def slack_events(request: Request) -> Response:
        """Slack's Request URL for interactivity (and later events and the /triage command)."""
        return await handler.handle(request)

    api_app.include_router(router)
