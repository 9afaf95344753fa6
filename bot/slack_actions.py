"""Button clicks from Slack: the ``slack.action`` job decides the move and carries it out.

The click was stored before Slack got its ack. Here, in the ticket's lane, the move is checked against the
workflow table, the clicker's roles and the version of the card they clicked; a refusal goes back to the
clicker alone (ephemeral), a move is recorded and mirrored to Jira and to the card.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlmodel import Session, col, select

from bot import queue
from bot.models import InboundEvent, Ticket, TicketCard, TicketHistory
from bot.retry import PermanentError
from bot.runtime import Runtime
from bot.slack_gateway import CHANNEL_UNREACHABLE
from bot.ticket_store import move
from bot.worker import JobContext
from workflows.cards import SECTION_LIMIT
from workflows.escaping import slack_text, truncate
from workflows.lifecycle import COALESCED, Effect, EffectKind
from workflows.policy import Policy
from workflows.states import TicketState
from workflows.transitions import Action, Decision, decide, roles_of

log = logging.getLogger("triage.slack")
KIND = "slack.action"
EPHEMERAL = "slack.ephemeral"


def handle_slack_action(runtime: Runtime, ctx: JobContext) -> None:
    event_id = json.loads(ctx.job.payload)["event_id"]
    for audience in runtime.policy.audiences():
        runtime.slack.members(audience.users)  # user groups asked of Slack now, not inside the transaction
    with ctx.final() as session:
        refusal: tuple[str, str, str] | None = None
        event = session.get(InboundEvent, event_id)
        if event is None:
            raise PermanentError(f"event {event_id} is gone")
        click = json.loads(event.body)
        ticket = session.get(Ticket, click["ticket"])
        if ticket is None:  # a card from another installation, or a ticket purged since
            words = f"Nothing changed: there is no ticket #{int(click['ticket'])}."
            tell(session, click["channel"], click["user"], words)
            return
        user, action = click["user"], Action(click["action"])
        policy = runtime.policy
        state = TicketState(ticket.state)
        verdict = judge(policy, runtime.slack.members, ticket, user, action, click.get("version"))
        if not verdict.allowed or verdict.to is None:
            reason = verdict.reason
            if click.get("version") != ticket.version:
                last = session.exec(
                    select(TicketHistory)
                    .where(TicketHistory.ticket_id == ticket.id, col(TicketHistory.to_state).is_not(None))
                    .order_by(col(TicketHistory.id).desc())
                ).first()
                if last is not None:
                    reason = f"{last.actor} already moved it to {TicketState(last.to_state or state).label}"
            refusal = (click["channel"], user, f"Nothing changed: {slack_text(reason)}.")
        elif (problem := _input_problem(policy, runtime.slack.members, ticket, action, click)) is not None:
            refusal = (click["channel"], user, f"Nothing changed: {slack_text(problem)}.")
        else:
            _carry_out(session, ctx, ticket, action, verdict.to, click)
        if refusal is not None:
            tell(session, *refusal)


def tell(session: Session, channel: str, user: str, words: str) -> None:
    """Queue an ephemeral message: only ``user`` sees it, in ``channel``."""
    queue.enqueue(
        session, kind=EPHEMERAL, lane=f"ephemeral:{user}", payload={"channel": channel, "user": user, "text": words}
    )


def send_ephemeral(runtime: Runtime, ctx: JobContext) -> None:
    """Tell one person, in the channel they clicked in, why nothing changed (only they see it)."""
    message = json.loads(ctx.job.payload)
    try:
        runtime.slack.ephemeral(message["channel"], message["user"], message["text"])
    except SlackApiError as problem:
        # A channel the bot is not in (a card shown by /triage elsewhere), or one that is gone: there is
        # nowhere to say it, and retrying will not change that. Anything else is retried as usual.
        if problem.response.get("error") not in CHANNEL_UNREACHABLE:
            raise
        log.warning(
            "could not tell a Slack user why nothing changed",
            extra={"channel": message["channel"], "user": message["user"], "error": problem.response.get("error")},
        )


Members = Callable[[tuple[str, ...]], frozenset[str]]


def judge(
    policy: Policy, members: Members, ticket: Ticket, user: str, action: Action, seen_version: int | None
) -> Decision:
    """May ``user`` take ``action`` on ``ticket`` as they saw it? (The listener asks before opening a form.)
    ``members`` expands a policy's user list (user groups included)."""
    team = policy.teams.get(ticket.team or "")
    roles = roles_of(
        user,
        operators=tuple(members(policy.operators.users)),
        team_members=tuple(members(team.users)) if team else (),
        qa=tuple(members(policy.qa.users)) if policy.qa else (),
    )
    return decide(
        TicketState(ticket.state),
        action,
        roles,
        version=ticket.version,
        seen_version=seen_version,
        has_assignee=ticket.assignee is not None,
    )


def _input_problem(
    policy: Policy, members: Members, ticket: Ticket, action: Action, click: dict[str, Any]
) -> str | None:
    """What is wrong with what the form said (checked again here: the policy may have changed since)."""
    if action is Action.ASSIGN_TEAM and click.get("team") not in policy.teams:
        return f"there is no team {click.get('team')!r}"
    if action is Action.ASSIGN_MEMBER:
        team = policy.teams.get(ticket.team or "")
        if team is None or click.get("member") not in members(team.users):
            return f"{click.get('member')} is not a member of team {ticket.team}"
    return None


def _carry_out(
    session: Session, ctx: JobContext, ticket: Ticket, action: Action, to: TicketState, click: dict[str, Any]
) -> None:
    """Record the move and queue its mirror images: Jira status, assignee and comment; the cards; the thread."""
    policy, user = ctx.runtime.policy, click["user"]
    what, shown = "", ""  # after the new state: for Jira and the history; for Slack (mrkdwn, with mentions)
    assign_to: tuple[str | None] | tuple[()] = ()
    if action is Action.ASSIGN_TEAM:
        ticket.team = click["team"]
        what, shown = f" (team {ticket.team})", f" (team {slack_text(ticket.team or '')})"
        if ticket.assignee is not None:
            ticket.assignee, assign_to = None, (None,)  # a new team picks its own member
    elif action is Action.ASSIGN_MEMBER:
        ticket.assignee = click["member"]
        assign_to = (ticket.assignee,)
        what, shown = f" (assignee: Slack user {ticket.assignee})", f" (assignee: <@{ticket.assignee}>)"
    elif to is TicketState.OPEN and ticket.assignee is not None:
        ticket.assignee, assign_to = None, (None,)  # sent back to triage: nobody works on it
    said = str(click.get("text") or "").strip()
    move(
        session,
        ticket,
        to,
        actor=user,
        via="slack",
        note=f"{action.label}{what} in Slack" + (f": {said}" if said else ""),
    )
    for channel in _channels_to_show(policy, ticket, to):
        _ensure_copy(session, ticket, channel)
    told = f"\n{_SAID[action]}: " if said else ""
    text = f"{action.label} by Slack user {user}: now {to.label}{what}.{told}{said}"
    note = truncate(f"{action.label} by <@{user}>: now {to.label}{shown}.{told}{slack_text(said)}", SECTION_LIMIT)
    lane = ctx.job.lane
    effects = [Effect(EffectKind.JIRA_TRANSITION, {"state": to.value})]
    effects += [Effect(EffectKind.JIRA_ASSIGN, {"user": who}) for who in assign_to]
    effects += [
        Effect(EffectKind.JIRA_COMMENT, {"text": text}),
        Effect(EffectKind.SLACK_CARD),
        Effect(EffectKind.SLACK_NOTE, {"raw": note}),
    ]
    for effect in effects:
        queue.enqueue(
            session, kind=effect.kind.value, lane=lane, payload=effect.payload, coalesce=effect.kind in COALESCED
        )


_SAID = {Action.RESOLVE: "What was done", Action.CLOSE: "Message for the customer"}


def _channels_to_show(policy: Policy, ticket: Ticket, to: TicketState) -> list[str]:
    """A ticket that moves to a team or to QA appears in their channel too."""
    team = policy.teams.get(ticket.team or "")
    if to in (TicketState.ASSIGNED, TicketState.IN_PROGRESS) and team is not None and team.channel:
        return [team.channel]
    if to is TicketState.IN_QA and policy.qa is not None and policy.qa.channel:
        return [policy.qa.channel]
    return []


def _ensure_copy(session: Session, ticket: Ticket, channel: str) -> None:
    if channel == ticket.slack_channel:
        return
    exists = session.exec(
        select(TicketCard.id).where(TicketCard.ticket_id == ticket.id, TicketCard.channel == channel)
    ).first()
    if exists is None:
        assert ticket.id is not None
        session.add(TicketCard(ticket_id=ticket.id, channel=channel))
