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
from workflows.cards import ACTION_PREFIX, ASSIGN_TEAM_VIEW, assign_team_modal
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
            chosen = Action(action["action_id"].removeprefix(ACTION_PREFIX))
            ticket_id, version = int(value["ticket"]), int(value["version"])
            channel = str((body.get("channel") or {}).get("id") or body["container"]["channel_id"])
            user = str(body["user"]["id"])
        except (KeyError, TypeError, ValueError):
            await ack()
            return
        click = {"action": chosen.value, "ticket": ticket_id, "version": version, "user": user, "channel": channel}
        if chosen is Action.ASSIGN_TEAM:
            # A form first: the move happens when it is submitted (and is decided then, like any click).
            await ack()
            modal = assign_team_modal(ticket_id, version, channel, list(runtime.policy.teams))
            await app.client.views_open(trigger_id=body["trigger_id"], view=modal)
            return
        delivery = f"{click['user']}:{action.get('action_ts', '')}:{action['action_id']}"
        await run_in_threadpool(persist_click, runtime, click, delivery)
        await ack()
        wake()

    @app.view(ASSIGN_TEAM_VIEW)
    async def on_assign_team(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            team = view["state"]["values"]["team"]["team"]["selected_option"]["value"]
            click = {
                "action": Action.ASSIGN_TEAM.value,
                "ticket": int(meta["ticket"]),
                "version": int(meta["version"]),
                "user": str(body["user"]["id"]),
                "channel": str(meta["channel"]),
                "team": str(team),
            }
        except (KeyError, TypeError, ValueError):
            await ack(response_action="errors", errors={"team": "Pick a team."})
            return
        if click["team"] not in runtime.policy.teams:
            await ack(response_action="errors", errors={"team": "That team is not in the policy."})
            return
        # The view id is the same if Slack retries the submission: the second one is a duplicate.
        await run_in_threadpool(persist_click, runtime, click, f"view:{view.get('id')}")
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
