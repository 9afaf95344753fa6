"""Button clicks on a ticket's card. A click is stored with its job before the listener acks, so an
acknowledged click is never lost; the move itself is decided by a worker (bot.tickets.clicks), and the clicker
hears back there. A button whose move needs words or a choice opens its form first (webhooks.slack.views takes
the submission).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import Session

from bot.db.models import Ticket
from bot.jobs.kinds import click_lane
from bot.runtime import Runtime
from bot.tickets.clicks import KIND
from bot.tickets.email import writes_to_customer
from bot.tickets.store import view
from webhooks.slack.intake import persist
from workflows.cards import ACTION_PREFIX, ButtonValue
from workflows.clicks import judge
from workflows.forms import FORMS, form_for, modal
from workflows.transitions import Action


def store_click(runtime: Runtime, click: dict[str, Any], delivery: str) -> bool:
    return persist(runtime, click, delivery, KIND, click_lane(int(click["ticket"])))


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
                policy, lambda users: slack.known_members(users) or frozenset(), view(ticket), user, action, version
            ).allowed
        else:
            allowed = True
        members = sorted(slack.known_members(team.users) or team.users) if team else []
        return FormContext(allowed, tuple(members), writes_to_customer(runtime.settings, ticket))


def register(app: AsyncApp, runtime: Runtime, wake: Callable[[], None]) -> None:
    names = SlackNames(app.client)

    async def store(click: dict[str, Any], delivery: str) -> None:
        await run_in_threadpool(store_click, runtime, click, delivery)

    @app.action(re.compile(f"^{re.escape(ACTION_PREFIX)}"))
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        try:
            value = ButtonValue.model_validate_json(action.get("value") or "")
            chosen = Action(action["action_id"].removeprefix(ACTION_PREFIX))
            ticket_id, version = value.ticket, value.version
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
