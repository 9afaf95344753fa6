"""POST /slack/events: Slack interactivity through slack-bolt, which checks every request's signature
(and its timestamp, against replays) over the raw body before anything is parsed. Listeners live one module per
kind (actions, views, commands), each with its ``register(app)``; Socket Mode shares the same Bolt app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from webhooks.slack import actions, commands, views


def build_bolt_app(runtime: Runtime, wake: Callable[[], None]) -> AsyncApp:
    base_url, token, secret = runtime.settings.effective_slack()
    app = AsyncApp(client=AsyncWebClient(token=token, base_url=base_url), signing_secret=secret)
    actions.register(app, runtime, wake)
    views.register(app, runtime, wake)
    commands.register(app, runtime, wake)
    return app


def install(api_app: Any, runtime: Runtime, wake: Callable[[], None]) -> AsyncApp:
    """Mount Slack's Request URL; the bolt app is returned for Socket Mode to share."""
    bolt = build_bolt_app(runtime, wake)
    handler = AsyncSlackRequestHandler(bolt)
    router = APIRouter(prefix="/slack", tags=["slack"])

    @router.post("/events")
    async def slack_events(request: Request) -> Response:
        """Slack's Request URL for interactivity (and later events and the /triage command)."""
        return await handler.handle(request)

    api_app.include_router(router)
    return bolt
