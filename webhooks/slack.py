"""POST /slack/events: Slack interactivity through slack-bolt, which checks every request's signature
(and its timestamp, against replays) over the raw body before anything is parsed.

A click is stored with its job before the listener acks, so an acknowledged click is never lost; the move
itself is decided by a worker (bot.slack_actions), and the clicker hears back there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot import queue
from bot.db import transaction
from bot.models import InboundEvent, Ticket
from bot.reports import writes_to_customer
from bot.runtime import Runtime
from bot.slack_actions import KIND, click_lane, judge
from webhooks import slack_command
from workflows.cards import ACTION_PREFIX
from workflows.forms import FORMS, INPUT_KEY, FormError, entered, form_for, form_of_callback, modal
from workflows.transitions import Action


def persist(runtime: Runtime, body: dict[str, Any], delivery: str, kind: str, lane: str | None = None) -> bool:
    """Store what Slack sent and its job, before the ack; False if Slack sent it before (a retry)."""
    try:
        with transaction(runtime.engine) as session:
            event = InboundEvent(source="slack", delivery_id=delivery[:255], body=json.dumps(body))
            session.add(event)
            session.flush()
            lane = lane or f"slack:{event.id}"
            queue.enqueue(session, kind=kind, lane=lane, payload={"event_id": event.id})
        return True
    except IntegrityError:
        return False


@dataclass(frozen=True)
class FormContext:
    """What the listener needs to know of a ticket before it opens a form (read, never written, here)."""

    allowed: bool
    members: tuple[str, ...]
    has_customer: bool


def form_context(runtime: Runtime, ticket_id: int, user: str, action: Action, version: int) -> FormContext | None:
    with Session(runtime.engine) as session:
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            return None
        # Only what is known without asking Slack (the ack cannot wait): with a user group not known yet, the
        # form opens and the worker decides the submission.
        policy, slack = runtime.policy, runtime.slack
        team = policy.teams.get(ticket.team or "")
        lists = [a.users for a in policy.audiences()]
        if all(slack.known_members(users) is not None for users in lists):
            allowed = judge(
                policy, lambda users: slack.known_members(users) or frozenset(), ticket, user, action, version
            ).allowed
        else:
            allowed = True
        members = sorted(slack.known_members(team.users) or team.users) if team else []
        return FormContext(allowed, tuple(members), writes_to_customer(runtime.settings, ticket))


def build_bolt_app(runtime: Runtime, wake: Any) -> AsyncApp:
    base_url, token, secret = runtime.settings.effective_slack()
    app = AsyncApp(client=AsyncWebClient(token=token, base_url=base_url), signing_secret=secret)
    names = SlackNames(app.client)

    async def store(click: dict[str, Any], delivery: str) -> None:
        await run_in_threadpool(persist, runtime, click, delivery, KIND, click_lane(int(click["ticket"])))

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
        delivery = f"{user}:{action.get('action_ts', '')}:{action['action_id']}"
        known = (
            await run_in_threadpool(form_context, runtime, ticket_id, user, chosen, version)
            if chosen in FORMS
            else None
        )
        form = form_for(chosen, has_customer=known.has_customer) if known else None
        if form is None or known is None or not known.allowed:
            # No form, or a click that will be refused anyway: the worker decides it and tells the clicker.
            await store(click, delivery)
            await ack()
            wake()
            return
        # A form first (Slack allows 3 seconds from the click to open it); the move happens on submission.
        await ack()
        if form.kind == "team":
            choices = [(team, team) for team in runtime.policy.teams]
        elif form.kind == "member":
            choices = await names.choices(known.members)
        else:
            choices = []
        view = modal(form, ticket=ticket_id, version=version, channel=channel, choices=choices)
        await app.client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(re.compile("^(" + "|".join(re.escape(form.callback_id) for form in FORMS.values()) + ")$"))
    async def on_form(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        form = form_of_callback(str(view.get("callback_id")))
        if form is None:
            await ack()  # not one of ours: close it
            return
        try:
            value = entered(form, (view.get("state") or {}).get("values") or {})
            if form.kind == "team" and value not in runtime.policy.teams:
                raise FormError("That team is not in the policy.")
            meta = json.loads(view.get("private_metadata") or "{}")
            click = {
                "action": form.action.value,
                "ticket": int(meta["ticket"]),
                "version": int(meta["version"]),
                "user": str(body["user"]["id"]),
                "channel": str(meta["channel"]),
                INPUT_KEY[form.kind]: value,
            }
        except FormError as problem:
            await ack(response_action="errors", errors={form.field: str(problem)})
            return
        except (KeyError, TypeError, ValueError):
            await ack(response_action="errors", errors={form.field: "This form is out of date."})
            return
        # The view id is the same if Slack retries the submission: the second one is a duplicate.
        await store(click, f"view:{view.get('id')}")
        await ack()
        wake()

    slack_command.register(app, runtime, wake, persist)
    return app


class SlackNames:
    """Display names for a form's member list, asked of Slack at most once an hour per person, and never
    for longer than the form can wait (Slack allows 3 seconds from the click to opening it)."""

    TTL = 3600.0
    WAIT = 1.0

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self.known: dict[str, tuple[float, str]] = {}

    async def choices(self, users: tuple[str, ...]) -> list[tuple[str, str]]:
        now = time.monotonic()
        missing = [u for u in users if u not in self.known or now - self.known[u][0] > self.TTL]
        if missing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(self._fetch(u) for u in missing)), self.WAIT)
        return [(u, self.known.get(u, (0.0, u))[1]) for u in users]

    async def _fetch(self, user: str) -> None:
        try:
            response = await self.client.users_info(user=user)
        except Exception:
            return
        who = response.get("user") or {}
        name = (who.get("profile") or {}).get("real_name") or who.get("real_name") or who.get("name") or user
        self.known[user] = (time.monotonic(), str(name))


def install(api_app: Any, runtime: Runtime, wake: Any) -> AsyncApp:
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
