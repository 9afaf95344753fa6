"""POST /slack/events: Slack interactivity through slack-bolt. Every request's size, signature (and its timestamp,
against replays) and shape are checked over the raw body before anything is parsed (``request``), and Bolt checks
the signature again. Listeners live one module per
kind (actions, views, commands), each with its ``register(app)``; Socket Mode shares the same Bolt app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime
from webhooks.openapi import SlackInteraction, SlackSlashCommand, form_body
from webhooks.slack import actions, commands, views
from webhooks.slack.request import bolt_request


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
    _, _, secret = runtime.settings.effective_slack()
    router = APIRouter(prefix="/slack", tags=["slack"])

    @router.post(
        "/events",
        openapi_extra=form_body(
            (SlackInteraction, SlackSlashCommand),
            "what Slack sends: an interaction (button, form) or the /triage command",
            "slackSignature",
        ),
    )
    async def slack_events(request: Request) -> Response:
        """Slack's Request URL for interactivity (and later events and the /triage command)."""
        checked = await bolt_request(request, secret, runtime.settings.max_body_bytes)
        return to_starlette_response(await bolt.async_dispatch(checked))

    api_app.include_router(router)
    return bolt
