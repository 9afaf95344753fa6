"""The ``/triage`` slash command (see workflows.commands): show a ticket's card, list tickets, open one.

Showing and listing only read, and answer in the ack itself (ephemeral: only the caller sees it). ``new``
opens a form; its submission is stored with a ``ticket.new`` job before the ack, like a click.
Only people the policy names (operators, QA, team members) may use it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp
from sqlmodel import Session

from bot.runtime import Runtime
from bot.tickets.manual import KIND as TICKET_NEW
from bot.tickets.store import find, newest, view
from webhooks.slack.intake import persist
from workflows import cards
from workflows.commands import (
    LIST_LIMIT,
    NEW_TICKET_VIEW,
    USAGE,
    Command,
    NewTicket,
    NewTicketMetadata,
    listing,
    new_ticket_entered,
    new_ticket_modal,
    parse,
)


def _answer(runtime: Runtime, command: Command) -> dict[str, Any]:
    """The ephemeral reply to ``show`` and ``list``."""
    with Session(runtime.engine) as session:
        if command.kind == "show":
            ticket = find(session, key=command.key, ticket_id=command.ticket_id)
            if ticket is None:
                return {"text": f"There is no ticket {command.key or f'#{command.ticket_id}'}."}
            shown = view(ticket, runtime.jira.browse_url(ticket.jira_key) if ticket.jira_key else None)
            return {"text": cards.fallback_text(shown), "blocks": cards.card(shown)}
        found = newest(session, command.states, command.team, LIST_LIMIT + 1)
        shown_list = [view(t, runtime.jira.browse_url(t.jira_key) if t.jira_key else None) for t in found]
        return {"text": listing(shown_list[:LIST_LIMIT], command, more=len(found) > LIST_LIMIT)}


def _known(runtime: Runtime, user: str) -> bool:
    """Is ``user`` in the policy? Only what is known without asking Slack: a user group not listed yet is
    asked for in the background, and counts as letting everyone through (``new`` is checked again by the
    worker; ``show`` and ``list`` only read)."""
    for audience in runtime.policy.audiences():
        known = runtime.slack.known_members(audience.users)
        if known is None:
            threading.Thread(target=runtime.slack.members, args=(audience.users,), daemon=True).start()
            return True
        if user in known:
            return True
    return False


def register(app: AsyncApp, runtime: Runtime, wake: Callable[[], None]) -> None:
    policy = runtime.policy

    @app.command(re.compile(r"^/"))  # whatever the command is called in the workspace (/triage by default)
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        user = str(command.get("user_id") or "")
        if not _known(runtime, user):
            await ack(
                response_type="ephemeral",
                text="Only the operators, QA and the teams in triage-bot's policy can use this.",
            )
            return
        asked = parse(str(command.get("text") or ""), list(policy.teams))
        if asked.kind == "help":
            await ack(response_type="ephemeral", text=USAGE)
        elif asked.kind == "unknown":
            await ack(response_type="ephemeral", text=f"{asked.problem}\n{USAGE}")
        elif asked.kind == "new":
            await ack()
            modal = new_ticket_modal(str(command.get("channel_id") or ""), list(policy.teams), policy.priorities())
            await app.client.views_open(trigger_id=command["trigger_id"], view=modal)
        else:
            reply = await run_in_threadpool(_answer, runtime, asked)
            await ack(response_type="ephemeral", **reply)

    @app.view(NEW_TICKET_VIEW)
    async def on_new_ticket(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        entered = new_ticket_entered(
            (view.get("state") or {}).get("values") or {}, list(policy.teams), policy.priorities()
        )
        if not isinstance(entered, NewTicket):
            await ack(response_action="errors", errors=entered)
            return
        try:
            channel = NewTicketMetadata.model_validate_json(view.get("private_metadata") or "").channel
        except ValidationError:
            channel = ""  # the ticket opens all the same; only the opener's answer has nowhere to go
        form = {
            "title": entered.title,
            "description": entered.description,
            "priority": entered.priority,
            "team": entered.team,
            "user": str(body["user"]["id"]),
            "channel": channel,
        }
        # The view id is the same if Slack retries the submission: the second one opens nothing.
        await run_in_threadpool(persist, runtime, form, f"view:{view.get('id')}", TICKET_NEW)
        await ack()
        wake()
